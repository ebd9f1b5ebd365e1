# Two commands do all the set-up: `make run` and `make test`.
# torch==2.13.0 is installed first: a CPU wheel lies on disk here, while an
# unpinned install would download a multi-GB CUDA build.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test test-slow bench

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# the main job: a character LSTM on Python's own standard library, 1,200 steps (about 3 minutes), then samples
run: $(STAMP)
	$(VENV)/bin/rnnkit train charlm

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) benchmarks/recurrent.py
	$(PY) benchmarks/ctc.py
	$(PY) benchmarks/decode.py
	$(PY) benchmarks/train_lm.py
	$(PY) benchmarks/seq2seq_training.py
	$(PY) benchmarks/tree_batching.py
	$(PY) benchmarks/precision.py
	$(PY) benchmarks/generation.py
