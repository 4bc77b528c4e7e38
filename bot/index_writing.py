"""Writing an index build: chunks and sentences embedded and stored, metadata
updated, stale vectors deleted. ``Index`` (bot/store.py) reads a build and inherits
these; only bot/ingest.py calls them, on a build that is not live yet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from bot.bm25 import Bm25
from bot.chroma import READ_PAGE, SENTENCES, chroma_errors, collection_name
from bot.chunking import Chunk, retrieval_text
from bot.config import Settings
from bot.embeddings import QabotEmbeddings
from bot.vectors import SentenceVectors, SentenceWriter

# Rows per Chroma write. Chroma refuses a write larger than its client's max batch
# size (5,461 with the SQLite it ships here: one 2.5 MB text made 6,801 chunks and the
# ingest failed); 1,000 stays far below it on any backend, at no measurable cost.
WRITE_BATCH = 1000
# Texts embedded between two progress reports: small enough that a bar moves every
# second or so on this machine's CPU embedders, large enough to keep their batches full
# (sentence-transformers batches 32).
EMBED_STEP = 64


class IndexWriting:
    """The writing side of ``bot.store.Index`` (the state it uses is the index's): the
    BM25 cache, loaded or rebuilt from the chunks, and a new build's vectors."""

    settings: Settings
    embeddings: QabotEmbeddings
    build: Path
    remote: bool
    sentences: SentenceVectors
    _client: Any
    _chunks: Any
    _chunks_raw: Any
    _sentences_raw: Any
    _writer: SentenceWriter | None
    manifest: dict[str, Any]
    bm25: Bm25

    # ----- BM25 ------------------------------------------------------------------
    def _load_bm25(self) -> None:
        path = self.build / "bm25"
        if not Bm25.present(path):
            self.rebuild_bm25()
            return
        bm25 = Bm25.load(path)
        # With a shared server another process may have ingested since this copy was
        # made: it is only a cache of the store's documents, valid for one build.
        if self.remote and bm25.build_id != self.manifest.get("build_id"):
            self.rebuild_bm25()
            return
        self.bm25 = bm25

    def rebuild_bm25(self) -> None:
        """Rebuild BM25 from the chunks stored in Chroma (the one source of truth)."""
        with chroma_errors(self.settings, "Reading chunks"):
            total = self._chunks_raw.count()

        def pages() -> Iterator[tuple[str, str]]:
            # in pages (READ_PAGE says why)
            for offset in range(0, total, READ_PAGE):
                with chroma_errors(self.settings, "Reading chunks"):
                    got = self._chunks_raw.get(limit=READ_PAGE, offset=offset,
                                               include=["documents", "metadatas"])
                for cid, text, meta in zip(got["ids"], got["documents"],
                                           got["metadatas"], strict=True):
                    meta = meta or {}
                    yield cid, retrieval_text(text, str(meta.get("kind", "")), meta)

        self.bm25 = Bm25.build(pages, self.build / "bm25", self.manifest.get("build_id"))

    def start_writing(self, base: Path | None) -> None:
        """Make this (new, local) build's sentence store from ``base``, the live build's
        sentences/ (None: start empty). A build from before sentences/ existed has its
        vectors in the copied Chroma store instead: they are moved over, not re-embedded."""
        assert not self.remote
        self._writer = SentenceWriter(self.build / "sentences", base)
        legacy = self._sentences_raw
        if legacy is None:
            return
        with chroma_errors(self.settings, "Reading sentence vectors"):
            total = legacy.count()
        for offset in range(0, total, READ_PAGE):  # in pages (READ_PAGE says why)
            with chroma_errors(self.settings, "Reading sentence vectors"):
                got = legacy.get(limit=READ_PAGE, offset=offset, include=["embeddings"])
            self._writer.add(got["ids"], got["embeddings"])
        with chroma_errors(self.settings, "Dropping the old sentence collection"):
            self._client.delete_collection(collection_name(self.settings, SENTENCES))
        self._sentences_raw = None

    def finish_writing(self) -> int:
        """Complete the sentence store (local builds); the number of vectors in it."""
        if self._writer is None:
            return len(self.sentences)
        count = self._writer.commit()
        self._writer = None
        self.sentences = SentenceVectors.open(self.build / "sentences")
        return count

    def add_chunks(self, chunks: Sequence[Chunk], *,
                   on_embedded: Callable[[int], None] | None = None) -> int:
        for at in range(0, len(chunks), WRITE_BATCH):
            part = chunks[at:at + WRITE_BATCH]
            self._add(self._chunks_raw, [c.id for c in part], [c.text for c in part],
                      [chunk_metadata(c) for c in part], "Writing chunks", on_embedded,
                      [retrieval_text(c.text, c.kind, c.meta) for c in part])
        return len(chunks)

    def _add(self, store: Any, ids: list[str], texts: list[str],
             metadatas: list[dict[str, Any]], what: str,
             on_embedded: Callable[[int], None] | None,
             embedded: list[str] | None = None) -> None:
        # embedded here, outside the Chroma error conversion: an embedder failure is
        # the embedder's (EmbedderError), not a damaged store. ``embedded``: the texts
        # the vectors are made of, when they differ from the stored ones
        vectors = self._embed(embedded or texts, on_embedded)
        with chroma_errors(self.settings, what):
            store.add(ids=ids, embeddings=vectors, documents=texts, metadatas=metadatas)

    def _embed(self, texts: list[str], on_embedded: Callable[[int], None] | None
               ) -> list[list[float]]:
        vectors: list[list[float]] = []
        for at in range(0, len(texts), EMBED_STEP):
            vectors += self.embeddings.embed_documents(texts[at:at + EMBED_STEP])
            if on_embedded is not None:
                on_embedded(len(texts[at:at + EMBED_STEP]))
        return vectors

    def update_metadata(self, chunks: Sequence[Chunk]) -> None:
        for at in range(0, len(chunks), WRITE_BATCH):
            part = chunks[at:at + WRITE_BATCH]
            with chroma_errors(self.settings, "Writing chunks"):
                self._chunks_raw.update(ids=[c.id for c in part],
                                                metadatas=[chunk_metadata(c) for c in part])

    def add_sentences(self, sentences: Sequence[tuple[str, str, dict[str, Any]]], *,
                      on_embedded: Callable[[int], None] | None = None) -> int:
        for at in range(0, len(sentences), WRITE_BATCH):
            part = sentences[at:at + WRITE_BATCH]
            ids, texts = [s[0] for s in part], [s[1] for s in part]
            if self._writer is not None:
                self._writer.add(ids, self._embed(texts, on_embedded))
            else:
                self._add(self._sentences_raw, ids, texts, [s[2] for s in part],
                          "Writing sentences", on_embedded)
        return len(sentences)

    def delete(self, chunk_ids: Iterable[str], sentence_ids: Iterable[str]) -> None:
        chunk_ids, sentence_ids = list(chunk_ids), list(sentence_ids)
        if self._writer is not None:
            self._writer.delete(sentence_ids)
            sentence_ids = []
        with chroma_errors(self.settings, "Deleting old vectors"):
            for at in range(0, len(chunk_ids), WRITE_BATCH):
                self._chunks.delete(ids=chunk_ids[at:at + WRITE_BATCH])
            for at in range(0, len(sentence_ids), WRITE_BATCH):
                self._sentences_raw.delete(ids=sentence_ids[at:at + WRITE_BATCH])


def chunk_metadata(chunk: Chunk) -> dict[str, Any]:
    meta: dict[str, Any] = {"source": chunk.source, "start": chunk.start, "end": chunk.end,
                            "kind": chunk.kind, "line": chunk.line}
    meta.update({k: v for k, v in chunk.meta.items()
                 if k in ("title", "date", "author", "publisher", "editor", "shown", "path",
                          "lines", "caption")})
    return meta
