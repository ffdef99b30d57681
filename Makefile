# dali-multicrop: install into the active Python environment, test, and (later) bench and profile.
PYTHON ?= python3
# DALI flavour: auto (from the NVIDIA driver: cuda13 where it supports CUDA 13 or newer, else cuda12, which also
# runs on machines without a GPU), cuda12 or cuda13.
DALI ?= auto
PYTEST_ARGS ?=
# make test's pytest-xdist workers (most tests wait on subprocesses: two workers on 2 cores take 4 minutes where one
# takes 7); 0 runs the suite in one process
TEST_WORKERS ?= 2
CROPS ?= 2x224,6x96
BENCH_ARGS ?=
PROFILES ?= profiles

.PHONY: install test test-gpu soak bench profile profile-cpu profile-gpu clean

install:
	@dali="$(DALI)"; \
	if [ "$$dali" = auto ]; then major=$$($(PYTHON) -m dali_multicrop.doctor --driver-cuda-major); \
	  if [ "$${major:-0}" -ge 13 ]; then dali=cuda13; else dali=cuda12; fi; \
	  echo "DALI=auto: $$dali (the NVIDIA driver supports CUDA $${major:-none: no driver})"; fi; \
	case "$$dali" in cuda12) other=nvidia-dali-cuda130;; cuda13) other=nvidia-dali-cuda120;; \
	  *) echo "DALI must be auto, cuda12 or cuda13, got '$$dali'" >&2; exit 2;; esac; \
	if $(PYTHON) -m pip show -q $$other >/dev/null 2>&1; then \
	  echo "removing $$other: only one DALI flavour may be installed"; $(PYTHON) -m pip uninstall -y -q $$other; fi; \
	$(PYTHON) -m pip install -e ".[$$dali,bench,albumentations,test,examples,s3,parquet,hf]"

test:
	$(PYTHON) -m pytest -q -n $(TEST_WORKERS) --dist loadscope $(PYTEST_ARGS)

test-gpu:
	$(PYTHON) -m pytest -q -m gpu $(PYTEST_ARGS)

# long runs (marker slow: memory, threads and files over 2000 batches and 50 loaders), then the figures as JSON
soak:
	$(PYTHON) -m pytest -q -m slow $(PYTEST_ARGS)
	$(PYTHON) -m dali_multicrop.benchmark.soak --out results/soak

# the main job: every backend side by side on the built-in sample data; results under results/
bench:
	dali-multicrop bench --crops $(CROPS) $(BENCH_ARGS)

# torch.profiler trace of loader + masks (open in Perfetto)
profile:
	$(PYTHON) -m dali_multicrop.benchmark.profile --crops $(CROPS) --out $(PROFILES)/trace.json

# py-spy flame graph of the CPU path (DALI's native threads included)
profile-cpu:
	@mkdir -p $(PROFILES)
	py-spy record --native --rate 200 -o $(PROFILES)/flame-cpu.svg -- \
	  $(PYTHON) -m dali_multicrop bench --crops $(CROPS) --backend dali-cpu --out $(PROFILES)/bench $(BENCH_ARGS)
	@echo "flame graph: $(PROFILES)/flame-cpu.svg"

# Nsight Systems timeline of the GPU path, where nsys is installed
profile-gpu:
	@if ! command -v nsys >/dev/null 2>&1; then \
	  echo "profile-gpu needs NVIDIA Nsight Systems ('nsys' on the PATH); it is not installed here" >&2; exit 2; fi
	@mkdir -p $(PROFILES)
	nsys profile --trace=cuda,nvtx,osrt --force-overwrite=true -o $(PROFILES)/dali-gpu \
	  $(PYTHON) -m dali_multicrop bench --crops $(CROPS) --backend dali-gpu --backend decode --out $(PROFILES)/bench $(BENCH_ARGS)
	@echo "timeline: $(PROFILES)/dali-gpu.nsys-rep (open it in Nsight Systems)"

clean:
	rm -rf build dist *.egg-info .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
