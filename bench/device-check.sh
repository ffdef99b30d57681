#!/usr/bin/env bash
# The GPU checks, prepared for a lent device machine (bring DALI first: ../shared/device/README.md; build the
# kit with EXTRA="psutil matplotlib timm braceexpand numba" so that the graph's crop step compiles (numba,
# with llvmlite), step 6 can run the training examples and step 3 the tar-shard source).
# Run from the repository root in the same call as the kit's last part:
#   bash .devkit/pN/kit.sh && bash bench/device-check.sh
# Order: the GPU benchmark first (the figure that matters), then the gpu-marked tests, then the masks timing.
# Budget: under 7 minutes in all; every step has its own timeout. Everything is written under $OUT (or
# ./device-out), and a summary goes to stdout. SAMPLES, BATCH and BATCHES override the sizes (a dry run on a
# CPU-only machine: SAMPLES=256 BATCH=16 BATCHES=4 bash bench/device-check.sh).
set -uo pipefail
out=${OUT:-device-out}
samples=${SAMPLES:-4096}   # 30 timed batches of 128 after warm-up fit in one epoch: no epoch boundary timed
batch=${BATCH:-128}
batches=${BATCHES:-30}
mkdir -p "$out"
export PYTHONPATH=$HOME/dali-site:$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 DALI_MULTICROP_CACHE=${DALI_MULTICROP_CACHE:-/tmp/dali-multicrop-cache}
t0=$(date +%s)
step() { echo "== $(( $(date +%s) - t0 ))s: $*" | tee -a "$out/steps.log"; }
has_smi() { command -v nvidia-smi >/dev/null 2>&1; }
bench=(python3 -m dali_multicrop bench --sample-images "$samples" --batch-size "$batch" --batches "$batches")

step "doctor: the driver / torch / DALI pairing, the GPUs and their hardware JPEG decoder"
timeout 60 python3 -m dali_multicrop doctor 2>&1 | tee "$out/doctor.txt"

step "machine"
{ has_smi && nvidia-smi; python3 -c "import sys, nvidia.dali as d, torch; print('python', sys.version.split()[0],
'DALI', d.__version__, 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"; nproc; } \
  > "$out/machine.txt" 2>&1
tail -3 "$out/machine.txt"

step "sample data ($samples JPEGs)"
timeout 150 python3 -c "from dali_multicrop.sample_data import ensure_sample_data as e; print(e($samples))"

step "1. decode ceiling: GPU decode vs CPU decode (decoder utilisation sampled every 250 ms)"
if has_smi; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,utilization.decoder,memory.used --format=csv -lms 250 \
    > "$out/nvsmi-decode.csv" 2>&1 &
  smi=$!
fi
timeout 150 "${bench[@]}" --crops 2x224,6x96 --backend decode --backend decode-cpu --out "$out/bench-decode" \
  2>&1 | tee "$out/bench-decode.log" | grep -E "│|decode|error" | tail -8
if has_smi; then
  kill "$smi" 2>/dev/null
  python3 - "$out/nvsmi-decode.csv" <<'EOF'
import csv, sys
lines = list(csv.reader(open(sys.argv[1])))
rows = [r for r in lines if len(r) >= 3 and r[2].strip().endswith("%")]
dec = [int(r[2].strip().rstrip(" %")) for r in rows]
if not dec:
    print("no decoder utilisation readings; nvidia-smi said:", " ".join(",".join(r) for r in lines[:2])[:300])
else:
    print(f"decoder utilisation during decode: max {max(dec)}%, mean {sum(dec) / len(dec):.0f}%, {len(dec)} samples"
          + ("  <- the hardware JPEG decoder did not run" if max(dec) == 0 else ""))
EOF
fi

step "2. the main comparison: dali-gpu, dali-cpu, torchvision, every core"
timeout 200 "${bench[@]}" --crops 2x224,6x96 --backend dali-gpu --backend dali-cpu --backend torchvision \
  --out "$out/bench" 2>&1 | tee "$out/bench.log" | grep -E "│|dali|torchvision|error" | tail -10

step "3. dali-gpu with masks in the loop, and DINO's recipe"
timeout 60 "${bench[@]}" --crops 2x224,6x96 --backend dali-gpu --masks global_only --out "$out/bench-masks" \
  2>&1 | tee "$out/bench-masks.log" | grep -E "│|error" | tail -4
timeout 60 "${bench[@]}" --crops dino --backend dali-gpu --out "$out/bench-dino" \
  2>&1 | tee "$out/bench-dino.log" | grep -E "│|error" | tail -4
timeout 90 "${bench[@]}" --crops 2x224,6x96 --backend dali-gpu --source tar --source arrays \
  --out "$out/bench-sources" 2>&1 | tee "$out/bench-sources.log" | grep -E "│|error" | tail -4

step "4. gpu-marked tests (warnings shown, not errors: another torch and Python than CI's)"
timeout 150 python3 -m pytest -q -m gpu -W default -p no:cacheprovider 2>&1 | tee "$out/gpu-tests.log" | tail -6

step "5. masks alone on the GPU (goal: under 1 ms per batch of 256)"
timeout 60 python3 bench/masks.py --device cuda --out "$out" 2>&1 | tail -6

step "6. training examples on the GPU (bf16 autocast), 30 steps each, where timm came with the kit"
if ! python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
  echo "no GPU: examples skipped here (tests/test_examples.py runs them on the CPU)"
elif python3 -c "import timm" 2>/dev/null; then
  timeout 120 python3 examples/train_ijepa.py --arch vit_small_patch16_224 --steps 30 --batch-size 64 \
    --data "$DALI_MULTICROP_CACHE/sample-v1-$samples" --log-every 5 2>&1 | tee "$out/train-ijepa.log" | tail -3
  timeout 120 python3 examples/train_dino.py --arch vit_small_patch16_224 --steps 30 --batch-size 64 \
    --data "$DALI_MULTICROP_CACHE/sample-v1-$samples" --log-every 5 2>&1 | tee "$out/train-dino.log" | tail -3
else
  echo "timm is not importable: examples skipped (build the kit with EXTRA=timm)"
fi

step "7. host budget: operators per batch, the GIL per batch (py-spy, where the kit brought it), decoder memory"
timeout 90 python3 -m dali_multicrop overhead --rounds 1 --batches 10 --out "$out/overhead" 2>&1 \
  | tee "$out/overhead.log" | grep -E "│|GIL|error" | tail -6
python3 -c "from dali_multicrop import DaliMultiCropLoader as L; import torch
if torch.cuda.is_available(): print('decoder memory per rank:', L('$DALI_MULTICROP_CACHE/sample-v1-$samples', device='gpu').decoder_memory)" \
  2>&1 | tee -a "$out/overhead.log"

step "7b. host ms per ready batch of the GPU graph (batch 256, tiny images; the issue-15 figure on its own device)"
timeout 100 python3 -c "
import dataclasses, json, torch
from dali_multicrop.benchmark.gil import measure_ready
from dali_multicrop.sample_data import ensure_tiny_data
data = str(ensure_tiny_data(16384))
for crops in ('2x224,6x96', 'dino'):
    for device in (['gpu'] if torch.cuda.is_available() else []) + ['cpu']:
        print(json.dumps(dataclasses.asdict(measure_ready('loader', crops, data, batch_size=256, batches=30,
                                                          device=device))), flush=True)
" 2>&1 | tee "$out/ready.jsonl" | tail -4

step "8. a timeline of 20 batches of dali-gpu, where nsys is installed"
if command -v nsys >/dev/null 2>&1 && has_smi; then
  timeout 120 nsys profile --trace=cuda,nvtx,osrt --force-overwrite=true -o "$out/dali-gpu" \
    "${bench[@]}" --batches 20 --crops 2x224,6x96 --backend dali-gpu --out "$out/bench-nsys" 2>&1 | tail -3
else
  echo "nsys or the GPU is missing: no timeline"
fi

step "done"
