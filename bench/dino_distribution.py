"""The `dino` preset's crops against DINO's own ``DataAugmentationDINO``, run from DINO's code, in distribution.

    git clone https://github.com/facebookresearch/dino /tmp/dino     # any checkout of DINO's code
    python bench/dino_distribution.py --dino /tmp/dino [--rounds 60] [--out bench/results/cpu-2core-fidelity]

Both make crops of scikit-image's 8 photographs ``--rounds`` times (the loader on the CPU graph, DINO's transform as
its ``main_dino.py`` builds it with global scale (0.4, 1), local scale (0.05, 0.4) and 8 local crops); per crop
position (global 1, global 2, the locals pooled) and statistic (:mod:`dali_multicrop.fidelity.distribution`: mean luma,
luma spread, saturation, hue, sharpness) the KS distance between the two samples, beside what chance gives at these
sizes (p = 0.001) and the goal (0.05). Prints the table and writes ``dino-distribution.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from dali_multicrop.benchmark.environment import describe_machine
from dali_multicrop.fidelity.distribution import KS_GOAL, distribution_fidelity
from dali_multicrop.fidelity.table import natural_photos
from dali_multicrop.recipes.presets import load_preset

POSITIONS = (("global 1", [0]), ("global 2", [1]), ("locals", list(range(2, 10))))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dino", type=Path, required=True, help="a checkout of facebookresearch/dino")
    p.add_argument("--rounds", type=int, default=60, help="passes over the 8 photographs, each side")
    p.add_argument("--out", type=Path, default=Path("bench/results/cpu-2core-fidelity"))
    args = p.parse_args()
    sys.path.insert(0, str(args.dino.resolve()))
    from main_dino import DataAugmentationDINO  # DINO's own code

    start = time.time()
    dino = DataAugmentationDINO((0.4, 1.0), (0.05, 0.4), 8)
    rows = distribution_fidelity(load_preset("dino"), natural_photos(), dino, rounds=args.rounds, positions=POSITIONS)
    print(f"dino preset (CPU graph) against DINO's DataAugmentationDINO, {args.rounds} rounds of 8 photographs "
          f"({time.time() - start:.0f} s); KS distance per crop statistic (goal {KS_GOAL}, chance at p 0.001 beside)")
    for r in rows:
        print(f"  {r.position:<9} {r.statistic:<12} crops {r.crops:>5}  KS {r.ks:.4f}  chance {r.chance:.4f}  "
              f"median ours {r.ours_median:.4g} / DINO's {r.theirs_median:.4g}" + ("" if r.ks <= KS_GOAL else "  <-"))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dino-distribution.json").write_text(json.dumps(
        {"rounds": args.rounds, "rows": [asdict(r) for r in rows], "machine": describe_machine()}, indent=1))


if __name__ == "__main__":
    main()
