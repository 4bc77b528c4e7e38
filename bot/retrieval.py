"""Hybrid retrieval: dense (Chroma) and BM25 (jieba tokens), fused by reciprocal rank.

The dense side scores a chunk by the better of its own similarity and its best
sentence's (``retrieval.sentence_side``): chunks are 200 characters of several
sentences, and a question answered by one of them should not lose to a chunk that is
merely on topic.

RRF only counts a side that has signal: BM25 contributes only chunks whose score is
above zero, so an English question about a Chinese document (no shared terms) is
ranked by the dense side alone instead of being averaged with noise. Boilerplate
chunks (site chrome) have their fused score multiplied by
``retrieval.boilerplate_penalty``: still findable, never ahead of article text that
matches as well.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from bot.chunking import KIND_BOILERPLATE, sentence_id, units
from bot.config import RetrievalSettings
from bot.store import Index

Mode = Literal["hybrid", "dense", "bm25"]


class HybridRetriever(BaseRetriever):
    """A LangChain retriever over an ``Index``; metadata carries every side's scores."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: Index
    settings: RetrievalSettings
    mode: Mode = "hybrid"
    k: int | None = None  # overrides settings.k (evaluation asks for more)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        # ``retriever.invoke(q, k=2)``: LangChain passes per-call keyword arguments here,
        # and its standard retriever tests expect ``k`` to win over the constructor's.
        return self.search(query, k=k)

    def search(self, query: str, *, k: int | None = None) -> list[Document]:
        """The ``k`` best passages for ``query`` (default: this retriever's ``k``, else
        ``retrieval.k``); fewer only when the index holds fewer."""
        s = self.settings
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ValueError(f"k must be a positive integer, got {k!r}")
        k = k or self.k or s.k
        fused: dict[str, dict[str, Any]] = {}
        docs: dict[str, Document] = {}

        vector = None
        if s.dense and self.mode in ("hybrid", "dense"):
            vector = self.index.embeddings.embed_query(query)
            for rank, (doc, score) in enumerate(self.index.dense_search(vector, s.fetch_k), 1):
                assert doc.id is not None
                docs[doc.id] = doc
                fused.setdefault(doc.id, {})["dense"] = (rank, score)
        if s.bm25 and self.mode in ("hybrid", "bm25"):
            for rank, (chunk_id, score) in enumerate(self.index.bm25_search(query, s.fetch_k), 1):
                fused.setdefault(chunk_id, {})["bm25"] = (rank, score)

        missing = [i for i in fused if i not in docs]
        docs.update(self.index.get_chunks(missing))
        if vector is not None and s.sentence_side:
            self._sentence_side(vector, docs, fused)

        ranked = []
        for chunk_id, sides in fused.items():
            found = docs.get(chunk_id)
            if found is None:  # BM25 knows an id Chroma lost: skip rather than fail
                continue
            score = sum(1.0 / (s.rrf_k + rank) for rank, _ in sides.values())
            if found.metadata.get("kind") == KIND_BOILERPLATE:
                score *= s.boilerplate_penalty
            ranked.append((score, chunk_id, sides))
        ranked.sort(key=lambda item: (-item[0], item[1]))

        out = []
        for position, (score, chunk_id, sides) in enumerate(ranked[:k], 1):
            src = docs[chunk_id]
            meta = dict(src.metadata)
            meta.update(
                chunk_id=chunk_id,
                rank=position,
                score=round(score, 6),
                dense_rank=sides.get("dense", (None, None))[0],
                dense_score=sides.get("dense", (None, None))[1],
                bm25_rank=sides.get("bm25", (None, None))[0],
                bm25_score=sides.get("bm25", (None, None))[1],
            )
            out.append(Document(page_content=src.page_content, metadata=meta, id=chunk_id))
        return out

    def _sentence_side(self, vector: list[float], docs: dict[str, Document],
                       fused: dict[str, dict[str, Any]]) -> None:
        """Make the dense side score a candidate by the better of its own similarity and
        its best sentence's: a chunk whose one sentence answers the question can sit low
        at chunk level when the rest of it is about something else. Still one dense
        side in the fusion (its ranks are redone), and only candidates the two sides
        found are scored, so no chunk is added. Only the ``fetch_k`` closest of all the
        candidates' sentences count (as the dense side takes ``fetch_k`` chunks): a
        candidate found by BM25 alone gains a dense rank only when one of its sentences
        is that close, not for merely having sentences."""
        sentences: list[tuple[str, str]] = []  # (chunk id, sentence id)
        for chunk_id, doc in docs.items():
            source = str(doc.metadata.get("source", ""))
            text = doc.page_content
            sentences += [(chunk_id, sentence_id(source, text[span.start:span.end]))
                          for span in units(text, str(doc.metadata.get("kind", "")))]
        vectors = self.index.sentence_vectors([sid for _, sid in sentences])
        query = np.asarray(vector, dtype=np.float32)
        query /= float(np.linalg.norm(query)) or 1.0
        cosine = {sid: float(np.dot(v, query) / (float(np.linalg.norm(v)) or 1.0))
                  for sid, v in vectors.items()}
        best = {cid: sides["dense"][1] for cid, sides in fused.items() if "dense" in sides}
        closest = sorted(((cosine[sid], cid) for cid, sid in sentences if sid in cosine),
                         reverse=True)[:self.settings.fetch_k]
        for score, cid in closest:
            if score > best.get(cid, -1.0):
                best[cid] = score
        for rank, cid in enumerate(sorted(best, key=lambda c: -best[c]), 1):
            fused[cid]["dense"] = (rank, best[cid])
