"""The Python API for people who build with LangChain: the index, the retriever and the
embeddings as LangChain objects, without the CLI.

>>> from bot.api import build_index, open_retriever
>>> build_index(["seeds"], home="/tmp/qabot-index")              # doctest: +SKIP
>>> retriever = open_retriever(home="/tmp/qabot-index", k=3)     # doctest: +SKIP
>>> retriever.invoke("霍城县江苏医院综合病房大楼总投资多少?", k=1)  # doctest: +SKIP

``open_retriever`` returns a ``langchain_core`` ``BaseRetriever`` (``HybridRetriever``),
``get_embeddings`` an ``Embeddings``: both pass LangChain's own standard test suites
(``tests/test_langchain_standard.py``). Settings resolve as everywhere else (keyword
arguments, then ``QABOT_*`` variables, then ``config/*.toml``), so an index built here is
the one ``qabot ask`` answers from. docs/langchain.md shows them in a chain.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from bot.config import Settings, load_settings
from bot.embeddings import QabotEmbeddings, make_embeddings
from bot.ingest import IngestReport
from bot.retrieval import HybridRetriever

__all__ = ["build_index", "get_embeddings", "open_retriever", "settings_for"]

PathLike = str | os.PathLike[str]


def settings_for(*, home: PathLike | None = None, embedder: str | None = None,
                 overrides: Mapping[str, Any] | None = None) -> Settings:
    """Resolved settings with ``home`` (all state), ``embedder`` (``embeddings.backend``)
    and any ``section.key`` overrides taking precedence, as CLI flags do."""
    cli: dict[str, Any] = dict(overrides or {})
    if home is not None:
        cli["paths.home"] = str(Path(home).expanduser().resolve())
    if embedder is not None:
        cli["embeddings.backend"] = embedder
    return load_settings(cli=cli)


def get_embeddings(embedder: str | None = None, *,
                   settings: Settings | None = None) -> QabotEmbeddings:
    """The configured (or named) embedding back-end as a LangChain ``Embeddings``."""
    settings = settings or settings_for(embedder=embedder)
    return make_embeddings(settings.embeddings)


def build_index(paths: Iterable[PathLike], *, home: PathLike | None = None,
                embedder: str | None = None, rebuild: bool = False,
                settings: Settings | None = None) -> IngestReport:
    """Index files and folders (as ``qabot ingest PATH...``): new and changed files are
    embedded, unchanged ones cost nothing, files gone from an ingested folder leave."""
    from bot.ingest import ingest

    settings = settings or settings_for(home=home, embedder=embedder)
    return ingest(settings, [Path(p) for p in paths], make_embeddings(settings.embeddings),
                  rebuild=rebuild)


def open_retriever(*, home: PathLike | None = None, embedder: str | None = None,
                   k: int | None = None, settings: Settings | None = None,
                   embeddings: QabotEmbeddings | None = None) -> HybridRetriever:
    """A hybrid (dense + BM25) retriever over a built index. ``k`` passages per call
    unless ``invoke(query, k=...)`` asks for another number; each document's metadata
    holds its source, character offsets and every side's rank and score. Call
    ``retriever.index.close()`` when done, to release the store's files."""
    from bot.store import Index

    settings = settings or settings_for(home=home, embedder=embedder)
    index = Index.open(settings, embeddings or make_embeddings(settings.embeddings))
    return HybridRetriever(index=index, settings=settings.retrieval, k=k)
