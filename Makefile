# Every target builds what it needs from nothing: a fresh clone runs `make demo` or `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?= $(or $(DIGITREAD_DATA),../shared/data/mnist)

.PHONY: install demo test lint bench model sequence-model clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of PyTorch, pinned: a looser requirement pulls a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/digitread read examples/numbers/
	$(BIN)/digitread predict default examples/digits/*.png

# Retrain the model shipped in the package (about 6 minutes on 2 cores) and install it.
model: $(STAMP)
	DIGITREAD_DATA=$(DATA) $(BIN)/digitread train --recipe reader --out runs/reader --overwrite
	cp runs/reader/model.safetensors runs/reader/config.json runs/reader/history.json src/digitread/weights/default/

# Retrain the sequence model shipped in the package (about 45 minutes on 2 cores) and install it.
sequence-model: $(STAMP)
	DIGITREAD_DATA=$(DATA) $(BIN)/digitread train --recipe strings --out runs/strings --overwrite
	mkdir -p src/digitread/weights/sequence
	cp runs/strings/model.safetensors runs/strings/config.json runs/strings/history.json src/digitread/weights/sequence/

test: $(STAMP)
	$(BIN)/ruff check src tests bench
	DIGITREAD_DATA=$(DATA) $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

bench: $(STAMP)
	DIGITREAD_DATA=$(DATA) $(BIN)/python bench/run.py --out bench/results
	DIGITREAD_DATA=$(DATA) $(BIN)/python bench/reading.py --out bench/results --failures reports/failures

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
