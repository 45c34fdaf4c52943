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

# Retrain the model shipped in the package (about 6 + 5 minutes on 2 cores) and install it: the reader
# recipe, then fine-tuned with pen-drawn digits in the styles MNIST lacks (recipes/reader_pen.json).
model: $(STAMP)
	DIGITREAD_DATA=$(DATA) $(BIN)/digitread train --recipe reader --out runs/reader --overwrite
	DIGITREAD_DATA=$(DATA) $(BIN)/digitread train --recipe reader_pen --init runs/reader --out runs/reader_pen --overwrite
	cp runs/reader_pen/model.safetensors runs/reader_pen/config.json runs/reader_pen/history.json src/digitread/weights/default/

# Retrain the sequence ensemble shipped in the package and install it: two members (about 45 and 35
# minutes on 2 cores), each fine-tuned with pen-drawn digits (about 15 minutes each), and a third
# trained from scratch with them (about an hour), then given a point class (about 30 minutes) and
# fine-tuned on strips whose digits touch twice as often (about 27 minutes).
SEQ := src/digitread/weights/sequence
sequence-model: $(STAMP)
	DIGITREAD_DATA=$(DATA) $(BIN)/digitread train --recipe strings --out runs/crnn_wide_base --overwrite
	DIGITREAD_DATA=$(DATA) $(BIN)/digitread train --recipe strings --model crnn_digits --out runs/crnn_digits_base --overwrite
	DIGITREAD_DATA=$(DATA) $(BIN)/digitread train --recipe strings_pen --init runs/crnn_wide_base --out runs/crnn_wide --overwrite
	DIGITREAD_DATA=$(DATA) $(BIN)/digitread train --recipe strings_pen --model crnn_digits --init runs/crnn_digits_base --out runs/crnn_digits --overwrite
	DIGITREAD_DATA=$(DATA) $(BIN)/digitread train --recipe strings --pen-digits 12000 --seed 7 --out runs/crnn_wide_pen --overwrite
	DIGITREAD_DATA=$(DATA) $(BIN)/digitread train --recipe strings_points --init runs/crnn_wide_pen --seed 9 --out runs/crnn_points_base --overwrite
	DIGITREAD_DATA=$(DATA) $(BIN)/digitread train --recipe strings_touching --init runs/crnn_points_base --seed 11 --out runs/crnn_points --overwrite
	DIGITREAD_DATA=$(DATA) $(BIN)/digitread ensemble runs/crnn_wide runs/crnn_digits runs/crnn_points --out $(SEQ)

test: $(STAMP)
	$(BIN)/ruff check src tests bench
	DIGITREAD_DATA=$(DATA) $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

bench: $(STAMP)
	# Training and classifying: 3 seeds of each recipe, PyTorch's MNIST example once as published (14 epochs).
	DIGITREAD_DATA=$(DATA) $(BIN)/python bench/run.py --out bench/results/speed.json --only fast --only fast_compiled --only fast995 --only best --only seed_mlp --only shipped
	DIGITREAD_DATA=$(DATA) $(BIN)/python bench/run.py --out bench/results/speed.json --only pytorch_example --seeds 1
	DIGITREAD_DATA=$(DATA) $(BIN)/python bench/reading.py --out bench/results --failures reports/failures
	$(BIN)/python bench/load.py --photos 200
	$(BIN)/python bench/load.py --photos 200 --clients 1 --seconds 20 --out bench/results/load_one_client.json
	# The soak: 3,000 requests to two workers, the server's memory sampled throughout.
	$(BIN)/python bench/load.py --photos 200 --clients 8 --max-requests 3000 --seconds 600 --workers 2 --size 1280x960 --out bench/results/soak.json
	$(BIN)/python bench/backends.py
	# Batch reading of 1,000 photos: 1 and 2 processes, and a local Dask cluster.
	$(BIN)/python bench/batch_read.py
	# Every architecture on one short schedule, 3 seeds (about 38 minutes).
	DIGITREAD_DATA=$(DATA) $(BIN)/python bench/zoo.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
