"""An in-memory ``Corpus`` (bot/answerers/contract.py): answerer tests without Chroma.

The chunks are given as text with the metadata the store would give them; term
statistics are counted over them the way the index counts them (full-dictionary
tokens per chunk), and every sentence gets a vector from an embedder (the hashing one
by default: no model, deterministic). The answerers run unchanged over it, in
milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from langchain_core.documents import Document

from bot import tokens
from bot.chunking import sentence_id, units
from bot.embeddings import HashingEmbeddings, QabotEmbeddings


def chunk(source: str, text: str, *, start: int = 0, title: str | None = None,
          **meta: Any) -> Document:
    """A retrieved passage as the store gives it: ``text`` at ``start`` of ``source``."""
    chunk_id = f"{source}#{start}"
    data: dict[str, Any] = {"source": source, "start": start, "end": start + len(text),
                            "chunk_id": chunk_id, **meta}
    if title:
        data["title"] = title
    return Document(page_content=text, metadata=data, id=chunk_id)


class MemoryCorpus:
    """The ``Corpus`` of ``chunks``."""

    def __init__(self, chunks: Sequence[Document],
                 embeddings: QabotEmbeddings | None = None) -> None:
        self.chunks = list(chunks)
        self._embeddings = embeddings or HashingEmbeddings()
        self._segmenter = tokens.Segmenter()
        self._df: dict[str, int] = {}
        for doc in self.chunks:
            for term in set(tokens.tokenize(doc.page_content)):
                self._df[term] = self._df.get(term, 0) + 1
        sentences: dict[str, str] = {}
        for doc in self.chunks:
            source = str(doc.metadata["source"])
            for span in units(doc.page_content, str(doc.metadata.get("kind", ""))):
                text = doc.page_content[span.start:span.end]
                sentences[sentence_id(source, text)] = text
        vectors = self._embeddings.embed_documents(list(sentences.values()))
        self._vectors = {sid: np.asarray(v, dtype=np.float32)
                         for sid, v in zip(sentences, vectors, strict=True)}

    @property
    def segmenter(self) -> tokens.Segmenter:
        return self._segmenter

    @property
    def embeddings(self) -> QabotEmbeddings:
        return self._embeddings

    def idf(self, term: str) -> float:
        n = max(len(self.chunks), 1)
        df = self._df.get(term, 0)
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def sentence_vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        return {i: self._vectors[i] for i in ids if i in self._vectors}

    def find_chunk(self, source: str, contains: str) -> Document | None:
        return next((doc for doc in self.chunks if doc.metadata["source"] == source
                     and contains in doc.page_content), None)
