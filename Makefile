# make train: set up .venv if needed, make sure Fashion-MNIST is present, run the default experiment.
# make test:  set up .venv if needed, check the style (make lint), run the whole test suite.
# make test-fast: the same without the tests marked slow or gpu, in under a minute.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: train test test-fast lint data benchmark clean

train: $(STAMP) data
	$(BIN)/dlpy train $(ARGS)

# -n auto: a pytest worker per core (pytest-xdist). --dist loadfile keeps each file on one worker,
# so a module's trained-run fixture is built once. tests/conftest.py shares the threads out.
test: lint
	$(BIN)/python -m pytest -q -n auto --dist loadfile $(ARGS)

test-fast: lint
	$(BIN)/python -m pytest -q -n auto --dist loadfile -m "not slow and not gpu" $(ARGS)

# ruff's lint rules and formatter, configured in pyproject.toml ([tool.ruff]).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

benchmark: $(STAMP) data
	$(BIN)/python scripts/benchmark.py

# Re-install whenever the dependencies or their pins change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,render,sweep,cluster,export,track]'
	touch $@

# Debian/Ubuntu ship Fashion-MNIST as a package; elsewhere torchvision downloads it on first use.
data:
	@if [ -d $(FMNIST) ]; then exit 0; \
	elif ! command -v apt-get >/dev/null; then echo "no apt-get: torchvision will download Fashion-MNIST"; \
	elif [ "$$(id -u)" = 0 ]; then (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) \
	  || echo "dataset-fashion-mnist could not be installed: torchvision will download Fashion-MNIST"; \
	else echo "To use the system copy of Fashion-MNIST: sudo apt-get install dataset-fashion-mnist"; fi

clean:
	rm -rf $(VENV) outputs .pytest_cache
