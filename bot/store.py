"""The on-disk index: Chroma (chunks), sentence vectors, BM25, and a manifest.

Layout under the state directory (``paths.home``, default ``index/``)::

    CURRENT              names the live build (one line); replaced atomically
    builds/<id>/         one complete build:
        manifest.json    embedder identity, chunking settings, per-file hashes and ids
        chroma/          Chroma PersistentClient: the collection "chunks"
        sentences/       every sentence's vector, memory-mapped (bot/vectors.py)
        bm25/            BM25 over jieba tokens of every chunk (bot/bm25.py)
    ingest.lock          held by the one writer

An ingest never writes into the live build: it copies it (or starts empty with
``--rebuild``), changes the copy, and only then points CURRENT at it. A reader therefore
always opens a complete build, an ingest killed at any moment leaves the previous build
live (its half-made copy is cleared by the next ingest), and a serving process notices
the new CURRENT and switches at its next question. The previous build is kept for
processes still answering from it. Indexes made before builds/ existed (manifest.json,
chroma/ and bm25/ directly under home) are read as they are and converted by the next
ingest. With a Chroma server (store.url) the collections are shared and written in
place (sentences too, as a collection, for serving processes elsewhere); home then
holds the manifest and BM25 cache directly. Builds made before sentences/ existed keep
their sentences in a Chroma collection: read from there, and moved into sentences/ by
the next ingest without embedding anything again.

Chunks are what retrieval ranks and citations point at; sentences carry their own
vectors so the extractive answerer can pick the supporting sentence inside a chunk
without embedding anything at question time; they are looked up by id, never searched,
so they need no vector index (bot/vectors.py says what that saves). Both use
content-hash ids: re-ingesting
an unchanged file embeds nothing, and a changed file embeds only its new text.

We always hand Chroma our own embeddings: its default embedding function downloads
a model, which fails offline. This module is the reading side; the build layout (which
build is live, manifests, copying and pruning builds) is ``bot/builds.py``, Chroma's
client and errors ``bot/chroma.py``, writing a build ``bot/ingest.py``, the BM25 side
``bot/bm25.py``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.documents import Document as LCDocument

from bot import tokens
from bot.bm25 import Bm25
from bot.builds import live_build, manifest_in
from bot.chroma import (
    CHUNKS,
    SENTENCES,
    chroma_errors,
    client_for,
    collection_name,
    native_stderr_to_log,
    read_info,
    serving_client,
    where,
)
from bot.config import Settings
from bot.embeddings import QabotEmbeddings
from bot.errors import (
    EmbedderMismatchError,
    IndexCorruptError,
    IndexMissingError,
    QabotError,
)
from bot.index_writing import IndexWriting
from bot.vectors import SentenceVectors, SentenceWriter

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
# Bump when loading or chunking changes what gets indexed: every file is re-chunked
# (only text that actually changed is embedded again).
# 10: chunks record their line, shown name and absolute path; 11: a table row is
# embedded and BM25-indexed with its document's title and table's caption
PIPELINE_VERSION = 11
# How often a serving process asks a Chroma server whether another process ingested
# (a round trip); a local index is checked at every question (reading one small file).
REMOTE_CHECK_SECONDS = 10.0




class Index(IndexWriting):
    """An opened index. Build one with ``ingest``; open one with ``Index.open``."""

    def __init__(self, settings: Settings, embeddings: QabotEmbeddings,
                 manifest: dict[str, Any], *, build: Path, client: Any = None) -> None:
        self.settings = settings
        self.embeddings = embeddings
        self.manifest = manifest
        self.build = build  # the directory this index reads: a build, or home itself
        tokens.set_cache_dir(settings.cache_dir)
        self.remote = bool(settings.store.url)
        self._client = client or client_for(settings, build)
        self._checked_at = time.monotonic()
        # the LangChain vector store answers similarity queries; chromadb's own
        # collection does the counting, paging and raw writes
        self._chunks, self._chunks_raw = self._collection(CHUNKS)
        # sentences: memory-mapped here, or a Chroma collection (server mode, and builds
        # made before sentences/ existed)
        self.sentences = SentenceVectors.empty()
        self._sentences_raw: Any = None
        self._writer: SentenceWriter | None = None
        if self.remote:
            self._sentences_raw = self._collection(SENTENCES)[1]
        elif SentenceVectors.present(build / "sentences"):
            self.sentences = SentenceVectors.open(build / "sentences")
        else:
            self._sentences_raw = self._existing(SENTENCES)
        self.bm25 = Bm25()

    # ----- opening -------------------------------------------------------------
    @classmethod
    def open(cls, settings: Settings, embeddings: QabotEmbeddings) -> Index:
        """Open the index for questions; errors say how to build or rebuild it."""
        build = live_build(settings.home) or settings.home
        manifest = manifest_in(build)
        client = None
        if manifest is None and settings.store.url:
            # a serving process on another machine: what the ingesting one recorded
            client = client_for(settings, build)
            manifest = read_info(client, settings)
        if manifest is None:
            where = (f"collection {settings.store.collection!r} on {settings.store.url}"
                     if settings.store.url else str(settings.home))
            raise IndexMissingError(f"No index at {where}. Build it with "
                                    "`qabot ingest` (indexes seeds/ by default).")
        built_with = manifest.get("embedder")
        if built_with != embeddings.identity:
            raise EmbedderMismatchError(
                f"The index at {settings.home} was built with {built_with}, but the "
                f"configured embedder is {embeddings.identity}. Re-ingest with "
                "`qabot ingest --rebuild`, or set embeddings.backend back.")
        if client is None and not settings.store.url:
            client = serving_client(settings, build)
        index = cls(settings, embeddings, manifest, build=build, client=client)
        index.check_in_step()
        index._load_bm25()
        return index

    def check_in_step(self) -> None:
        """The store opens and holds as many chunks (and sentence vectors) as the
        manifest lists."""
        with chroma_errors(self.settings, "Reading the Chroma store"):
            stored = self._chunks_raw.count()
        if stored != self.chunk_count:
            raise IndexCorruptError(
                f"The index is out of step: the manifest lists {self.chunk_count} chunks but "
                f"the store ({where(self.settings)}) holds {stored}. Rebuild with "
                "`qabot ingest --rebuild`.")
        listed = self.manifest.get("sentence_count")
        if self._sentences_raw is None and listed is not None and listed != len(self.sentences):
            raise IndexCorruptError(
                f"The index is out of step: the manifest lists {listed} sentences but "
                f"{self.build / 'sentences'} holds {len(self.sentences)}. Rebuild with "
                "`qabot ingest --rebuild`.")

    def _collection(self, name: str) -> tuple[Any, Any]:
        """(langchain-chroma store, the chromadb collection under it) for ``name``."""
        from langchain_chroma import Chroma

        full = collection_name(self.settings, name)
        with chroma_errors(self.settings, f"Opening the Chroma collection {full!r}"), \
                native_stderr_to_log():
            store = Chroma(collection_name=full, client=self._client,
                           embedding_function=self.embeddings,
                           collection_metadata={"hnsw:space": "cosine"})
            return store, self._client.get_collection(full, embedding_function=None)

    def _existing(self, name: str) -> Any:
        """The chromadb collection ``name`` if this store has it, else None."""
        from chromadb.errors import NotFoundError

        full = collection_name(self.settings, name)
        try:
            with chroma_errors(self.settings, f"Opening the Chroma collection {full!r}"):
                return self._client.get_collection(full, embedding_function=None)
        except IndexCorruptError as exc:
            if isinstance(exc.__cause__, (NotFoundError, ValueError)):
                return None
            raise

    def superseded(self) -> bool:
        """Whether another process has made a newer build live since this one opened.
        A pointer that cannot be read says no: the build in hand keeps serving."""
        try:
            if not self.remote:
                return live_build(self.settings.home) != self.build
            now = time.monotonic()
            if now - self._checked_at < REMOTE_CHECK_SECONDS:
                return False
            self._checked_at = now
            info = read_info(self._client, self.settings)
            return info is not None and info.get("build_id") != self.manifest.get("build_id")
        except (QabotError, OSError) as exc:
            log.debug("cannot tell whether the index was rebuilt: %s", exc)
            return False

    def close(self) -> None:
        """Release the Chroma store (its SQLite handles and caches)."""
        if not self.remote:
            with contextlib.suppress(Exception):
                self._client.close()

    # ----- questions -----------------------------------------------------------
    def dense_search(self, query_vector: Sequence[float], k: int) -> list[tuple[LCDocument, float]]:
        """Chunks nearest to the query vector, with cosine similarity."""
        n = min(k, self.chunk_count)
        if n == 0:
            return []
        with chroma_errors(self.settings, "A Chroma query"):
            hits = self._chunks.similarity_search_by_vector_with_relevance_scores(
                list(query_vector), k=n)
        # cosine space: Chroma returns distance = 1 - cosine
        return [(doc, 1.0 - float(dist)) for doc, dist in hits]

    def bm25_search(self, query: str, k: int) -> list[tuple[str, float]]:
        """(chunk id, BM25 score) for chunks sharing terms with the query; zeros dropped."""
        return self.bm25.search(query, k)

    @property
    def segmenter(self) -> tokens.Segmenter:
        """Question segmentation with the corpus vocabulary (tokens.py)."""
        return self.bm25.segmenter

    def get_chunks(self, ids: Sequence[str]) -> dict[str, LCDocument]:
        if not ids:
            return {}
        with chroma_errors(self.settings, "Reading chunks"):
            got = self._chunks.get(ids=list(ids), include=["documents", "metadatas"])
        return {
            i: LCDocument(page_content=d, metadata=dict(m or {}), id=i)
            for i, d, m in zip(got["ids"], got["documents"], got["metadatas"], strict=True)
        }

    def all_chunks(self) -> list[LCDocument]:
        """Every chunk with its metadata (evaluation uses it; not for the question path)."""
        with chroma_errors(self.settings, "Reading chunks"):
            got = self._chunks.get(include=["documents", "metadatas"])
        return [LCDocument(page_content=d, metadata=dict(m or {}), id=i)
                for i, d, m in zip(got["ids"], got["documents"], got["metadatas"], strict=True)]

    def find_chunk(self, source: str, contains: str) -> LCDocument | None:
        """The first chunk of ``source`` whose text contains ``contains``."""
        with chroma_errors(self.settings, "Reading chunks"):
            got = self._chunks.get(where={"source": source},
                                   where_document={"$contains": contains},
                                   include=["documents", "metadatas"], limit=1)
        if not got["ids"]:
            return None
        meta = dict(got["metadatas"][0] or {})
        meta["chunk_id"] = got["ids"][0]
        return LCDocument(page_content=got["documents"][0], metadata=meta, id=got["ids"][0])

    def sentence_vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors of those of ``ids`` this index has (chunking.sentence_id)."""
        if not ids:
            return {}
        if self._sentences_raw is None:
            return self.sentences.get(ids)
        with chroma_errors(self.settings, "Reading sentence vectors"):
            got = self._sentences_raw.get(ids=list(dict.fromkeys(ids)), include=["embeddings"])
        return {i: np.asarray(v, dtype=np.float32)
                for i, v in zip(got["ids"], got["embeddings"], strict=True)}

    def idf(self, term: str) -> float:
        """BM25-style idf of a term over chunks; unseen terms get the maximum."""
        return self.bm25.idf(term)

    @property
    def chunk_count(self) -> int:
        return int(self.manifest.get("chunk_count", 0))

    @property
    def document_count(self) -> int:
        return len(self.manifest.get("files", {}))
