"""Rules used everywhere, each written once: argument checks (``checks.py``), seeds derived from keys
(``seeds.py``), the machine's cores and cache folder (``system.py``), dtype and device choices (``choices.py``), the
DALI import (``dali.py``), Numba kernels and DALI operators compiled once and cached (``compiled.py``), the YAML
folders shipped in the package (``shipped.py``). They import nothing of the package outside this folder."""
