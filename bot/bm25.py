"""The lexical side of the index: bm25s over jieba tokens of every chunk, the document
frequencies behind ``idf``, and the corpus vocabulary the question segmenter uses.

Stored under ``<build>/bm25/``: ``model/`` (bm25s), ``ids.json`` (chunk ids in model
order, df, n, the build id it was made for) and ``vocab.json`` (tokens.py). It is a
cache of the chunks stored in Chroma, rebuilt from them whenever it is missing or, with
a shared Chroma server, made for another build.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bot import tokens
from bot.errors import IndexCorruptError
from bot.files import atomic_write

log = logging.getLogger(__name__)


class Bm25:
    """An opened (or freshly built) BM25 index over chunk texts."""

    def __init__(self) -> None:
        self._model: Any = None
        self.ids: list[str] = []
        self.df: dict[str, int] = {}
        self.n_docs = 0
        self.build_id: str | None = None
        # question segmentation: the corpus vocabulary once loaded (tokens.py)
        self.segmenter: tokens.Segmenter = tokens.FULL

    @staticmethod
    def present(path: Path) -> bool:
        return (path / "ids.json").is_file()

    @classmethod
    def load(cls, path: Path) -> Bm25:
        """Read the index under ``path``; IndexCorruptError when it is unreadable."""
        bm25 = cls()
        try:
            meta = json.loads((path / "ids.json").read_text("utf-8"))
            bm25.ids, bm25.df, bm25.n_docs = meta["ids"], meta["df"], meta["n"]
            bm25.build_id = meta.get("build")
            bm25._model = _bm25s().BM25.load(str(path / "model")) if bm25.ids else None
            if (path / "vocab.json").is_file():  # absent in indexes built before it
                bm25.segmenter = tokens.Segmenter.load(path / "vocab.json")
        except Exception as exc:
            raise IndexCorruptError(f"The BM25 index in {path} is unreadable: {exc}. "
                                    "Rebuild with `qabot ingest --rebuild`.") from exc
        return bm25

    @classmethod
    def build(cls, pages: Callable[[], Iterable[tuple[str, str]]], path: Path,
              build_id: str | None) -> Bm25:
        """Index every (chunk id, text) ``pages`` yields and save it under ``path``."""
        bm25 = cls()
        corpus: list[list[str]] = []
        shared: dict[str, str] = {}  # one string object per distinct token, not per use
        with tokens.FULL.recording() as vocabulary:
            for chunk_id, text in pages():
                bm25.ids.append(chunk_id)
                corpus.append([shared.setdefault(t, t) for t in tokens.FULL.tokenize(text)])
        for toks in corpus:
            for tok in set(toks):
                bm25.df[tok] = bm25.df.get(tok, 0) + 1
        bm25.n_docs, bm25.build_id = len(bm25.ids), build_id
        path.mkdir(parents=True, exist_ok=True)
        if bm25.ids:
            model = _bm25s().BM25()
            model.index(corpus, show_progress=False)
            model.save(str(path / "model"), show_progress=False)
            bm25._model = model
        bm25.segmenter = tokens.FULL.save_vocabulary(vocabulary, path / "vocab.json")
        atomic_write(path / "ids.json", json.dumps(
            {"ids": bm25.ids, "df": bm25.df, "n": bm25.n_docs, "build": build_id},
            ensure_ascii=False))
        return bm25

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """(chunk id, BM25 score) for chunks sharing terms with the query; zeros dropped."""
        terms = [t for t in self.segmenter.tokenize(query) if t in self.df]
        if self._model is None or not terms:
            return []
        k = min(k, len(self.ids))
        docs, scores = self._model.retrieve([terms], k=k, show_progress=False)
        return [(self.ids[int(d)], float(s))
                for d, s in zip(docs[0], scores[0], strict=True) if s > 0]

    def idf(self, term: str) -> float:
        """BM25-style idf of a term over chunks; unseen terms get the maximum."""
        df = self.df.get(term, 0)
        n = max(self.n_docs, 1)
        return math.log(1 + (n - df + 0.5) / (df + 0.5))


def _bm25s() -> Any:
    import bm25s

    # bm25s sets its own logger to DEBUG when imported; it is chatty at every index build
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s
