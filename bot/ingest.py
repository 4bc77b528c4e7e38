"""Ingest: bring the index in line with a set of files, as one new build.

Documents stream in one at a time; their new chunks and sentences are embedded in
batches across documents and written to a copy of the live build (bot/store.py says
why a reader never sees it half-made), which becomes live when the run is complete.
Content-hash ids make re-ingest incremental: an unchanged file embeds nothing, a changed
one embeds only its new text. ``Progress`` reports texts embedded of texts queued.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.builds import (
    BUILDS,
    clear_unfinished,
    copy_store,
    live_build,
    make_live,
    manifest_in,
    prune,
    read_manifest,
    write_manifest,
    writer_lock,
)
from bot.chroma import wipe_remote, write_errors, write_info
from bot.chunking import Chunk, iter_chunks, sentence_id, unit_offsets, units
from bot.config import Settings
from bot.embeddings import QabotEmbeddings
from bot.errors import (
    EmbedderMismatchError,
    IndexCorruptError,
    IndexMissingError,
    QabotError,
)
from bot.loading import Document, discover, iter_documents
from bot.store import (
    MANIFEST_VERSION,
    PIPELINE_VERSION,
    Index,
)
from bot.vectors import SentenceVectors
from bot.wording import count

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    documents: int = 0  # files indexed after this run (all of them, not just new)
    chunks: int = 0  # chunks in the index after this run
    added_files: int = 0
    changed_files: int = 0
    unchanged_files: int = 0
    removed_files: int = 0
    embedded_chunks: int = 0
    embedded_sentences: int = 0
    deleted_chunks: int = 0
    skipped: list[str] = field(default_factory=list)  # "path: reason"
    ignored: list[str] = field(default_factory=list)  # files of unsupported types
    seconds: float = 0.0

    def summary(self) -> str:
        parts = [
            f"{count(self.documents, 'document')}, {count(self.chunks, 'chunk')} in "
            f"{self.seconds:.1f}s",
            f"{self.added_files} new, {self.changed_files} changed, "
            f"{self.unchanged_files} unchanged, {self.removed_files} removed",
            f"embedded {count(self.embedded_chunks, 'chunk')} + "
            f"{count(self.embedded_sentences, 'sentence')}",
        ]
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        if self.ignored:
            parts.append(f"{len(self.ignored)} of unsupported types ignored")
        return "; ".join(parts)


@dataclass
class Progress:
    """Where an ingest stands, on a scale fixed before the first file is read.

    ``work_total`` is the size of everything to ingest (bytes of the files found by a
    quick scan, or characters of in-memory documents), so the total never grows as
    files are read. A file's share counts as done when its texts are embedded (each
    queued text carries an equal part of the queue's weight; unchanged, skipped and
    already-embedded text counts at once), so ``fraction`` only moves forward and
    reaches 1 exactly when the last text is embedded. ``to_embed`` counts texts
    (chunks and sentences) queued so far, ``embedded`` those done."""

    files_done: int = 0
    files_total: int = 0
    embedded: int = 0
    to_embed: int = 0
    work_total: float = 0.0
    work_done: float = 0.0
    # the progress weight of the texts queued but not embedded yet, and how many they are
    pending_weight: float = 0.0
    pending_texts: int = 0

    def queued(self, weight: float, texts: int) -> None:
        """A document of ``weight`` queued ``texts`` texts: done as they are embedded
        (``embedded_now``), or now when it queued none."""
        if texts:
            self.pending_weight += weight
            self.pending_texts += texts
        else:
            self.work_done += weight

    def embedded_now(self, n: int) -> None:
        """``n`` queued texts were embedded: each carries an equal part of the queue."""
        self.embedded += n
        if self.pending_texts:
            step = min(n, self.pending_texts)
            share = self.pending_weight * step / self.pending_texts
            self.work_done += share
            self.pending_weight -= share
            self.pending_texts -= step

    @property
    def fraction(self) -> float:
        if self.work_total <= 0:
            return self.files_done / self.files_total if self.files_total else 0.0
        return min(self.work_done / self.work_total, 1.0)


ProgressFn = Callable[[Progress], None]


def chunk_sentences(chunk: Chunk) -> list[tuple[str, str, dict[str, Any]]]:
    """(sentence id, text, metadata) for the sentences the answerer will look up."""
    out = []
    meta = {"start": chunk.start, "end": chunk.end, "kind": chunk.kind}
    for span in units(chunk.text, chunk.kind):
        text = chunk.text[span.start:span.end]
        start, end = unit_offsets(meta, span)
        out.append((sentence_id(chunk.source, text), text,
                    {"source": chunk.source, "start": start, "end": end, "kind": chunk.kind}))
    return out


def ingest(settings: Settings, paths: Sequence[Path], embeddings: QabotEmbeddings, *,
           rebuild: bool = False, progress: ProgressFn | None = None,
           follow_links: bool = False) -> IngestReport:
    """Bring the index in line with ``paths``: add new, update changed, drop deleted files.

    Files under an ingested folder that no longer exist are removed from the index.
    Unchanged files (same bytes, same chunking settings) cost nothing. Links out of an
    ingested folder are skipped unless ``follow_links`` (``loading.discover``).
    """
    files, ignored, refused, shown = discover(paths, follow_links=follow_links)
    for problem in refused:
        log.warning("skipped: %s", problem)
    sizes = [_size(path) for path in files]  # the quick scan: the total is fixed now
    with write_errors(settings, "Ingesting"), writer_lock(settings.home):
        run = Ingestion(settings, embeddings, rebuild=rebuild, progress=progress)
        run.report.ignored = [str(p) for p in ignored]
        run.report.skipped.extend(refused)
        run.progress.files_total = len(files)
        run.progress.work_total = float(sum(sizes))
        run.tell()
        items = iter_documents(files, root=settings.source_root, shown=shown)
        for done, (item, size) in enumerate(zip(items, sizes, strict=True), start=1):
            run.add(item, weight=size)
            run.progress.files_done = done
            run.tell()
        roots = [p.resolve() for p in paths]
        run.remove(lambda path: any(_is_under(path, r) for r in roots) and not path.is_file())
        return run.finish()


def ingest_documents(settings: Settings, documents: Iterable[Document],
                     embeddings: QabotEmbeddings, *, rebuild: bool = False,
                     progress: ProgressFn | None = None, total: int = 0) -> IngestReport:
    """Index documents built in memory (e.g. the contexts of an evaluation set)."""
    docs = list(documents)  # in memory already: sizing them first costs nothing
    with write_errors(settings, "Ingesting"), writer_lock(settings.home):
        run = Ingestion(settings, embeddings, rebuild=rebuild, progress=progress)
        run.progress.files_total = total or len(docs)
        run.progress.work_total = float(sum(len(d.text) for d in docs))
        run.tell()
        for done, doc in enumerate(docs, start=1):
            run.add(doc, weight=len(doc.text))
            run.progress.files_done = done
            run.tell()
        return run.finish()


def remove(settings: Settings, paths: Sequence[Path], embeddings: QabotEmbeddings
           ) -> IngestReport:
    """Drop documents (files, or every document under a folder) from the index."""
    if read_manifest(settings.home) is None:
        raise IndexMissingError(f"No index at {settings.home}: nothing to remove.")
    with write_errors(settings, "Removing"), writer_lock(settings.home):
        run = Ingestion(settings, embeddings, rebuild=False)
        roots = [p.resolve() if p.exists() else (settings.root / p).resolve() for p in paths]
        run.remove(lambda path: any(_is_under(path, r) for r in roots))
        return run.finish()


class Ingestion:
    """One ingest run: documents in, vectors written in batches, a new build made live.

    Embedding work is buffered across documents, so many small files still embed in
    full batches; the buffer is bounded, so memory stays flat however large the corpus.
    All writes go to a new build (a copy of the live one, made at the first write; empty
    with ``rebuild``), which becomes live only once complete: see the module docstring.
    A run that changes nothing writes nothing.
    """

    FLUSH_AT = 512  # texts waiting to be embedded

    def __init__(self, settings: Settings, embeddings: QabotEmbeddings, *, rebuild: bool,
                 progress: ProgressFn | None = None) -> None:
        self.started = time.perf_counter()
        self.progress = Progress()
        self._tell = progress
        self.settings = settings
        self.embeddings = embeddings
        self.home = settings.home
        self.remote = bool(settings.store.url)
        self.rebuild = rebuild
        self.report = IngestReport()
        self.home.mkdir(parents=True, exist_ok=True)
        clear_unfinished(self.home)  # half-made builds of killed ingests (we hold the lock)
        try:
            self.live = live_build(self.home)
        except IndexCorruptError:
            if not rebuild:
                raise
            self.live = None  # --rebuild works from any state: the old build is not read
        if rebuild and self.remote:
            wipe_remote(settings)
        manifest = None if rebuild or self.live is None else manifest_in(self.live)
        self.manifest, self.rechunk_all = _starting_manifest(manifest, settings, embeddings)
        self.entries: dict[str, Any] = self.manifest["files"]
        self._index: Index | None = None
        self.seen: set[str] = set()
        self._chunks: list[Chunk] = []
        self._sentences: dict[str, tuple[str, str, dict[str, Any]]] = {}
        self._stale_chunks: set[str] = set()
        self._stale_sentences: set[str] = set()

    @property
    def index(self) -> Index:
        """The index being written, made at the first write (see the class docstring)."""
        if self._index is None:
            if self.remote:
                build = self.home
            else:
                stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
                build = self.home / BUILDS / f"{stamp}-{uuid.uuid4().hex[:8]}"
                build.mkdir(parents=True)
                if self.live is not None and not self.rebuild:
                    copy_store(self.live / "chroma", build / "chroma")
            self._index = Index(self.settings, self.embeddings, self.manifest, build=build)
            if not self.remote:
                base = self.live / "sentences" if self.live is not None and not self.rebuild \
                    else None
                self._index.start_writing(base)
        return self._index

    def add(self, item: Document | QabotError, *, weight: float = 0.0) -> None:
        """Queue one document's new text (``weight``: its share of the progress total)."""
        queued_before = self.progress.to_embed
        try:
            self._add(item)
        finally:
            self.progress.queued(weight, self.progress.to_embed - queued_before)

    def _add(self, item: Document | QabotError) -> None:
        if isinstance(item, QabotError):
            self.report.skipped.append(str(item))
            log.warning("skipped: %s", item)
            return
        doc = item
        self.seen.add(doc.source)
        old = self.entries.get(doc.source)
        if old and old["sha256"] == doc.sha256 and not self.rechunk_all:
            self.report.unchanged_files += 1
            return
        old_chunks = set(old["chunks"]) if old else set()
        old_sents = set(old["sentences"]) if old else set()
        chunk_ids: list[str] = []
        sentence_ids: dict[str, None] = {}  # in order, once each (chunks overlap)
        kept: list[Chunk] = []
        # chunk by chunk, flushing as the queue fills: a long document is never held
        # as chunks, sentences or vectors all at once
        for chunk in iter_chunks(doc, size=self.settings.chunking.size,
                                 overlap=self.settings.chunking.overlap,
                                 measure=self.embeddings.count_tokens):
            chunk_ids.append(chunk.id)
            if chunk.id in old_chunks:
                kept.append(chunk)  # same text, maybe new metadata: no re-embedding
            else:
                self._chunks.append(chunk)
                self.progress.to_embed += 1
            for sentence in chunk_sentences(chunk):
                sid = sentence[0]
                if sid in sentence_ids:
                    continue
                sentence_ids[sid] = None
                if sid not in old_sents:
                    self._sentences[sid] = sentence
                    self.progress.to_embed += 1
            if len(kept) >= self.FLUSH_AT:
                self.index.update_metadata(kept)
                kept = []
            if len(self._chunks) + len(self._sentences) >= self.FLUSH_AT:
                self._flush()
        if kept:
            self.index.update_metadata(kept)
        stale = old_chunks.difference(chunk_ids)
        self._stale_chunks |= stale
        self._stale_sentences |= old_sents.difference(sentence_ids)
        self.report.deleted_chunks += len(stale)
        self.entries[doc.source] = {"sha256": doc.sha256, "chunks": chunk_ids,
                                    "sentences": list(sentence_ids), "meta": doc.meta}
        if old:
            self.report.changed_files += 1
        else:
            self.report.added_files += 1

    def remove(self, gone: Callable[[Path], bool]) -> None:
        """Drop indexed documents (not seen in this run) whose path ``gone`` accepts."""
        for source in list(self.entries):
            if source in self.seen:
                continue
            path = Path(source) if Path(source).is_absolute() else self.settings.root / source
            if gone(path.resolve()):
                old = self.entries.pop(source)
                self._stale_chunks |= set(old["chunks"])
                self._stale_sentences |= set(old["sentences"])
                self.report.deleted_chunks += len(old["chunks"])
                self.report.removed_files += 1

    def tell(self) -> None:
        if self._tell is not None:
            self._tell(self.progress)

    def _embedded(self, n: int) -> None:
        self.progress.embedded_now(n)
        self.tell()

    def _flush(self) -> None:
        if self._sentences:
            self.report.embedded_sentences += self.index.add_sentences(
                list(self._sentences.values()), on_embedded=self._embedded)
        if self._chunks:
            self.report.embedded_chunks += self.index.add_chunks(
                self._chunks, on_embedded=self._embedded)
        self._chunks, self._sentences = [], {}

    def finish(self) -> IngestReport:
        self._flush()
        live_sentences = {i for e in self.entries.values() for i in e["sentences"]}
        stale_sentences = self._stale_sentences - live_sentences
        if self._stale_chunks or stale_sentences:
            self.index.delete(self._stale_chunks, stale_sentences)
        report, manifest = self.report, self.manifest
        changed = bool(report.added_files or report.changed_files or report.removed_files)
        manifest["chunk_count"] = sum(len(e["chunks"]) for e in self.entries.values())
        report.documents = len(self.entries)
        report.chunks = manifest["chunk_count"]
        bm25_missing = self.live is None or not (self.live / "bm25" / "ids.json").is_file()
        # a build from before sentences/ existed is converted even when nothing changed
        old_layout = (not self.remote and self.live is not None
                      and not SentenceVectors.present(self.live / "sentences"))
        if self._index is None and not (changed or self.rechunk_all or bm25_missing
                                        or old_layout or self.rebuild
                                        or "built_at" not in manifest):
            # nothing changed: the live build stays, once it is shown to be readable
            # (a damaged store must not pass for "unchanged")
            assert self.live is not None
            probe = Index(self.settings, self.embeddings, manifest, build=self.live)
            try:
                probe.check_in_step()
            finally:
                probe.close()
            report.seconds = time.perf_counter() - self.started
            return report
        if changed or self.rebuild or "built_at" not in manifest:
            manifest["built_at"] = datetime.now(UTC).isoformat(timespec="seconds")
            manifest["build_id"] = uuid.uuid4().hex  # what cached BM25 copies check
        index = self.index
        if not self.remote:
            manifest["sentence_count"] = index.finish_writing()
        index.rebuild_bm25()
        write_manifest(index.build, manifest)
        if self.remote:
            write_info(index._client, self.settings, manifest)
        else:
            index.close()
            make_live(self.home, index.build)
            prune(self.home, keep={index.build, self.live})
        report.seconds = time.perf_counter() - self.started
        return report


def _size(path: Path) -> int:
    """A file's size for the progress total (0 if it vanished: its error comes later)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _is_under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _starting_manifest(manifest: dict[str, Any] | None, settings: Settings,
                       embeddings: QabotEmbeddings) -> tuple[dict[str, Any], bool]:
    """The manifest a run starts from (the live build's, or a new one) stamped with this
    run's chunking and pipeline, and whether every file must be re-chunked (they
    changed). A build made with another embedder is refused: its vectors would mix."""
    home = settings.home
    if manifest is not None and manifest.get("embedder") != embeddings.identity:
        raise EmbedderMismatchError(
            f"The index at {home} was built with {manifest.get('embedder')}, not "
            f"{embeddings.identity}. Run `qabot ingest --rebuild` to rebuild it with the "
            "configured embedder.")
    # sizes are tokens of the embedder's tokenizer: chunks measured another way are
    # re-chunked (and only changed text embedded again)
    chunking = {"size": settings.chunking.size, "overlap": settings.chunking.overlap,
                "unit": embeddings.token_unit}
    if manifest is None:
        manifest = {"version": MANIFEST_VERSION, "embedder": embeddings.identity,
                    "chunking": chunking, "files": {}}
    rechunk_all = (manifest.get("chunking") != chunking
                   or manifest.get("pipeline") != PIPELINE_VERSION)
    manifest["chunking"] = chunking
    manifest["pipeline"] = PIPELINE_VERSION
    return manifest, rechunk_all
