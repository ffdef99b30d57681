#!/usr/bin/env bash
# The GPU checks, prepared for a lent device machine (see ../shared/device/README.md for bringing DALI).
# Run from the repository root after the last kit part, in the same call:
#   bash .devkit/pN/kit.sh && bash bench/device-check.sh
# Writes everything under $OUT (or ./device-out): gpu test log, bench folders, masks timing.
set -uo pipefail
out=${OUT:-device-out}
mkdir -p "$out"
export PYTHONPATH=$HOME/dali-site:$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 DALI_MULTICROP_CACHE=/tmp/dali-multicrop-cache
{ nvidia-smi; python3 -c "import nvidia.dali as d, torch; print('DALI', d.__version__, 'torch', torch.__version__)"; } \
  2>&1 | tee "$out/machine.txt"
# 1. the gpu-marked tests (the same checks as on the CPU backend)
timeout 300 python3 -m pytest -q -m gpu -p no:cacheprovider 2>&1 | tee "$out/gpu-tests.log" | tail -5
# 2. the benchmark: every backend, all 16 cores for DALI threads and torchvision workers
timeout 300 python3 -m dali_multicrop bench --crops 2x224,6x96 --batch-size 128 --batches 30 --out "$out/bench" \
  2>&1 | tee "$out/bench.log" | tail -14
# 3. the same with masks in the loop, GPU backends only
timeout 120 python3 -m dali_multicrop bench --crops 2x224,6x96 --batch-size 128 --batches 30 --masks global_only \
  --backend dali-gpu --backend decode --out "$out/bench-masks" 2>&1 | tee "$out/bench-masks.log" | tail -8
# 4. masks alone on the GPU (goal: under 1 ms per batch of 256)
timeout 120 python3 bench/masks.py --device cuda --out "$out" 2>&1 | tail -6
