"""The lexical side of the index: BM25 over jieba tokens of every chunk, the document
frequencies behind ``idf``, and the corpus vocabulary the question segmenter uses.

Okapi BM25 with Lucene's idf, log(1 + (N - df + 0.5) / (df + 0.5)), and term weight
tf / (tf + k1 * (1 - b + b * len / avglen)), k1 = 1.5, b = 0.75: the scores bm25s gives
with its defaults (a test checks ours against it), which this index used before.

Built here rather than by bm25s because of memory: bm25s holds every chunk's token list
as Python objects while it indexes (166 MiB for the 29,000 chunks of a 10 MB text, so
gigabytes for a 50 MB one). This build keeps one 8-byte key per (term, chunk) pair,
sorts them in place and writes the weights straight to disk; a reader maps the arrays
instead of loading them.

Stored under ``<build>/bm25/``: ``ids.json`` (format, chunk ids in index order, terms
in id order, chunk count, the build id it was made for), ``weights.npy`` / ``docs.npy``
(float32 weight and int32 chunk of each pair, grouped by term), ``indptr.npy`` (where
each term's pairs start) and ``vocab.json`` (tokens.py). It is a cache of the chunks
stored in Chroma, rebuilt from them whenever it is missing, of an older format or, with
a shared Chroma server, made for another build.
"""

from __future__ import annotations

import json
import logging
import math
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bot import tokens
from bot.errors import IndexCorruptError, QabotError
from bot.files import atomic_write

log = logging.getLogger(__name__)

FORMAT = 2  # 1: bm25s's own files (model/); read as absent, so rebuilt
K1 = 1.5  # bm25s / Lucene defaults, kept so that scores did not change with the format
B = 0.75
# A (term, chunk, tf) triple packed into one uint64 sort key: term in the top 24 bits,
# chunk in the next 24, tf (capped) in the low 16. 2^24 = 16.7 million chunks or terms,
# about 5 GB of text in one index.
_BITS = 24
_LIMIT = 1 << _BITS
_TERM_SHIFT = 40
_DOC_SHIFT = 16
_TF_CAP = (1 << _DOC_SHIFT) - 1
_SLICE = 1 << 20  # pairs converted to weights at a time while writing


class Bm25:
    """An opened (or freshly built) BM25 index over chunk texts."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.n_docs = 0
        self.build_id: str | None = None
        self._vocab: dict[str, int] = {}
        self._weights: Any = None  # numpy arrays, memory-mapped when loaded
        self._docs: Any = None
        self._indptr: Any = None
        # question segmentation: the corpus vocabulary once loaded (tokens.py)
        self.segmenter: tokens.Segmenter = tokens.FULL

    @staticmethod
    def present(path: Path) -> bool:
        """Whether ``path`` holds an index of this format (an older one is rebuilt)."""
        return (path / "ids.json").is_file() and (path / "weights.npy").is_file()

    @classmethod
    def load(cls, path: Path) -> Bm25:
        """Read the index under ``path``; IndexCorruptError when it is unreadable."""
        bm25 = cls()
        try:
            meta = json.loads((path / "ids.json").read_text("utf-8"))
            if meta.get("format") != FORMAT:
                raise ValueError(f"format {meta.get('format')}, expected {FORMAT}")
            bm25.ids, bm25.n_docs = meta["ids"], meta["n"]
            bm25.build_id = meta.get("build")
            bm25._vocab = {t: i for i, t in enumerate(meta["terms"])}
            bm25._weights = np.load(path / "weights.npy", mmap_mode="r")
            bm25._docs = np.load(path / "docs.npy", mmap_mode="r")
            bm25._indptr = np.load(path / "indptr.npy", mmap_mode="r")
            if (len(bm25._indptr) != len(bm25._vocab) + 1
                    or len(bm25._weights) != len(bm25._docs)
                    or int(bm25._indptr[-1]) != len(bm25._docs)):
                raise ValueError("arrays out of step with the vocabulary")
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
        vocab = bm25._vocab
        keys = array("Q")  # one packed (term, chunk, tf) per distinct term of a chunk
        lengths = array("I")  # tokens per chunk
        with tokens.FULL.recording() as vocabulary:
            for chunk_id, text in pages():
                doc = len(bm25.ids)
                if doc >= _LIMIT:
                    raise QabotError(f"More than {_LIMIT:,} chunks: too many for one "
                                     "index. Split the documents over several indexes.")
                bm25.ids.append(chunk_id)
                toks = tokens.FULL.tokenize(text)
                lengths.append(len(toks))
                for term, tf in Counter(vocab.setdefault(t, len(vocab)) for t in toks).items():
                    keys.append((term << _TERM_SHIFT) | (doc << _DOC_SHIFT)
                                | min(tf, _TF_CAP))
        if len(vocab) >= _LIMIT:
            raise QabotError(f"More than {_LIMIT:,} distinct terms: too many for one index.")
        bm25.n_docs, bm25.build_id = len(bm25.ids), build_id
        path.mkdir(parents=True, exist_ok=True)
        bm25._write(np.frombuffer(keys, dtype=np.uint64) if keys else
                    np.zeros(0, np.uint64), np.frombuffer(lengths, dtype=np.uint32)
                    if lengths else np.zeros(0, np.uint32), path)
        del keys
        bm25.segmenter = tokens.FULL.save_vocabulary(vocabulary, path / "vocab.json")
        terms = list(vocab)  # insertion order is id order
        atomic_write(path / "ids.json", json.dumps(
            {"format": FORMAT, "ids": bm25.ids, "terms": terms, "n": bm25.n_docs,
             "build": build_id}, ensure_ascii=False))
        return bm25

    def _write(self, keys: Any, lengths: Any, path: Path) -> None:
        """Sort the packed pairs by term (in place) and write weights, chunks and term
        offsets as .npy files, converting a slice at a time."""
        keys.sort()
        # where each term's pairs start: a search in the sorted keys, no per-pair temporary
        starts = np.arange(len(self._vocab) + 1, dtype=np.uint64) << np.uint64(_TERM_SHIFT)
        indptr = np.searchsorted(keys, starts).astype(np.int64)
        df = np.diff(indptr)
        idf = np.log1p((self.n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
        avg = float(lengths.mean()) if len(lengths) else 1.0
        norm = (K1 * (1 - B + B * lengths / max(avg, 1e-9))).astype(np.float32)
        partial = {name: path / f"{name}.tmp.npy" for name in ("weights", "docs", "indptr")}
        weights = np.lib.format.open_memmap(partial["weights"], mode="w+",
                                            dtype=np.float32, shape=(len(keys),))
        docs = np.lib.format.open_memmap(partial["docs"], mode="w+", dtype=np.int32,
                                         shape=(len(keys),))
        mask = np.uint64(_LIMIT - 1)
        for at in range(0, len(keys), _SLICE):
            part = keys[at:at + _SLICE]
            term = (part >> np.uint64(_TERM_SHIFT)).astype(np.int64)
            doc = ((part >> np.uint64(_DOC_SHIFT)) & mask).astype(np.int64)
            tf = (part & np.uint64(_TF_CAP)).astype(np.float32)
            docs[at:at + _SLICE] = doc
            weights[at:at + _SLICE] = idf[term] * tf / (tf + norm[doc])
        weights.flush()
        docs.flush()
        del weights, docs
        np.save(partial["indptr"], indptr)
        for name, tmp in partial.items():  # each file whole or absent
            tmp.replace(path / f"{name}.npy")
        self._weights = np.load(path / "weights.npy", mmap_mode="r")
        self._docs = np.load(path / "docs.npy", mmap_mode="r")
        self._indptr = indptr

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """(chunk id, BM25 score) for chunks sharing terms with the query; zeros dropped.
        A term the query repeats counts each time (as in bm25s)."""
        terms = [self._vocab[t] for t in self.segmenter.tokenize(query) if t in self._vocab]
        if not terms or not self.n_docs:
            return []
        scores = np.zeros(self.n_docs, dtype=np.float32)
        for term in terms:
            a, b = int(self._indptr[term]), int(self._indptr[term + 1])
            scores[self._docs[a:b]] += self._weights[a:b]
        hits = np.flatnonzero(scores > 0)
        if len(hits) > k:
            hits = hits[np.argpartition(-scores[hits], k - 1)[:k]]
        order = sorted(hits.tolist(), key=lambda d: (-scores[d], d))
        return [(self.ids[d], float(scores[d])) for d in order]

    @property
    def vocabulary(self) -> Mapping[str, int]:
        """Every term of the indexed chunks (the same object for the index's life)."""
        return self._vocab

    def frequency(self, term: str) -> int:
        """How many chunks hold ``term``."""
        i = self._vocab.get(term)
        return 0 if i is None else int(self._indptr[i + 1] - self._indptr[i])

    def idf(self, term: str) -> float:
        """BM25-style idf of a term over chunks; unseen terms get the maximum."""
        i = self._vocab.get(term)
        df = 0 if i is None else int(self._indptr[i + 1] - self._indptr[i])
        n = max(self.n_docs, 1)
        return math.log(1 + (n - df + 0.5) / (df + 0.5))
