"""The masking module works where DALI is not installed; the loader says how to install it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import importlib.abc, sys

    class NoDali(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "nvidia.dali" or name.startswith("nvidia.dali."):
                raise ImportError("No module named 'nvidia.dali' (hidden by the test)")
            return None

    sys.meta_path.insert(0, NoDali())
    import torch
    from dali_multicrop import DaliMultiCropLoader, MultiCropMaskGenerator

    masks = MultiCropMaskGenerator("2x224,6x96", num_levels=2)(batch_size=3)
    assert masks.context[0].shape == (2, 3, 196) and masks.targets[7].shape == (2, 3, 4, 36)
    assert "nvidia.dali" not in sys.modules
    try:
        DaliMultiCropLoader(sys.argv[1], device="cpu")
    except ImportError as exc:
        print("IMPORT-ERROR:", exc)
    else:
        raise SystemExit("the loader was built without DALI")
""")


def test_masks_without_dali_and_loader_install_hint(tmp_path):
    from conftest import coordinate_image, write_folder

    folder = write_folder(tmp_path, {"a": [coordinate_image(32, 32)]})
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(folder)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "IMPORT-ERROR: NVIDIA DALI is not importable" in proc.stdout
    assert "pip install 'dali-multicrop[cuda12]'" in proc.stdout
