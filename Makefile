# One entry point for people and CI. `make chat` and `make test` set everything up first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# two installs: `chat` needs only the lean default (no torch); `test` adds the dev tools,
# the LLM clients, the sentence-transformers extra and the PostgreSQL driver, whose
# back-ends it tests
BASE := $(VENV)/.installed-base
FULL := $(VENV)/.installed-full

.PHONY: setup chat test lint bench clean conversations

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(BASE): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $(BASE)

# torch==2.13.0 first: it is a local CPU wheel on this machine kind; the `st` extra
# (sentence-transformers) would otherwise fetch a multi-GB CUDA build.
$(FULL): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev,llm,st,pg]'
	touch $(BASE) $(FULL)

setup: $(FULL)

chat: $(BASE)
	$(BIN)/qabot chat

# ruff everywhere; mypy --strict on bot/ (settings in pyproject.toml)
lint: $(FULL)
	$(BIN)/ruff check bot tests bench train fakes
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q

# the hand-written conversation set (tests/data/conversations/README.md): its own index
# of the seed, tests/data/docs and the kettle FAQ, in a scratch state folder
CONV_HOME := reports/conversations-home
conversations: $(BASE)
	rm -rf $(CONV_HOME)
	$(BIN)/qabot --home $(CONV_HOME) ingest seeds tests/data/docs tests/data/conversations/kettle_faq.md
	$(BIN)/qabot --home $(CONV_HOME) eval tests/data/conversations/conversations.jsonl \
		--report reports/conversations --predictions reports/conversations.jsonl

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
