# dali-multicrop: install into the active Python environment, test, and (later) bench and profile.
PYTHON ?= python3
# DALI flavour: cuda12 (CUDA 12 drivers, and machines without a GPU) or cuda13 (CUDA 13 drivers).
DALI ?= cuda12
PYTEST_ARGS ?=

.PHONY: install test test-gpu clean

install:
	@case "$(DALI)" in cuda12) other=nvidia-dali-cuda130;; cuda13) other=nvidia-dali-cuda120;; \
	  *) echo "DALI must be cuda12 or cuda13, got '$(DALI)'" >&2; exit 2;; esac; \
	if $(PYTHON) -m pip show -q $$other >/dev/null 2>&1; then \
	  echo "removing $$other: only one DALI flavour may be installed"; $(PYTHON) -m pip uninstall -y -q $$other; fi
	$(PYTHON) -m pip install -e ".[$(DALI),bench,test]"

test:
	$(PYTHON) -m pytest -q $(PYTEST_ARGS)

test-gpu:
	$(PYTHON) -m pytest -q -m gpu $(PYTEST_ARGS)

clean:
	rm -rf build dist *.egg-info .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
