# One entry point for people and CI. `make chat` and `make test` set everything up first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup chat test lint bench clean

# torch==2.13.0 first: it is a local CPU wheel here; anything else that pulls torch in
# (sentence-transformers) would otherwise fetch a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev,llm]'
	touch $(STAMP)

setup: $(STAMP)

chat: $(STAMP)
	$(BIN)/qabot chat

# ruff everywhere; mypy --strict on bot/ (settings in pyproject.toml)
lint: $(STAMP)
	$(BIN)/ruff check bot tests bench train
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
