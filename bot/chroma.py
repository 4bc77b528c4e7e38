"""The Chroma side of an index: the client (embedded on disk, a copy when the disk
is read-only, or a ``chroma run`` server), collection names, the index information a
server keeps for processes without a manifest, and Chroma's errors turned into ours
(with what to do next). bot/store.py reads through it; bot/ingest.py writes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.errors import (
    IndexCorruptError,
    QabotError,
    StoreUnavailableError,
    StoreWriteError,
)

log = logging.getLogger(__name__)

CHUNKS = "chunks"
SENTENCES = "sentences"
INFO = "info"  # server mode: embedder identity and build time, for processes without a manifest
# Rows read from Chroma at a time (rebuilding BM25, moving old sentence vectors): one
# get() of everything makes Chroma hold it all at once (~800 MiB at 10^5 chunks); pages
# of 1,000 added 40 MiB to the process over 30,000 chunks, pages of 5,000 56 MiB
# (measured here).
READ_PAGE = 1000


def wipe_remote(settings: Settings) -> None:
    """--rebuild with a Chroma server: drop our collections there and the local cache."""
    import shutil

    client = client_for(settings, settings.home)
    for name in (CHUNKS, SENTENCES, INFO):
        with contextlib.suppress(Exception):  # absent collection: nothing to drop
            client.delete_collection(collection_name(settings, name))
    shutil.rmtree(settings.home / "bm25", ignore_errors=True)
    (settings.home / "manifest.json").unlink(missing_ok=True)


@contextlib.contextmanager
def chroma_errors(settings: Settings, what: str) -> Iterator[None]:
    """Convert whatever Chroma raises into IndexCorruptError. Its Rust core reports a
    damaged database with pyo3's PanicException, which derives from BaseException, so
    ``except Exception`` alone lets it through as a traceback."""
    try:
        yield
    except QabotError:
        raise
    except BaseException as exc:
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise  # KeyboardInterrupt, SystemExit
        detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else \
            type(exc).__name__
        cause = _cause(exc)
        if cause == "timeout":
            raise StoreUnavailableError(
                f"{what} failed: the Chroma server at {settings.store.url} did not answer "
                f"within store.timeout = {settings.store.timeout:g} s. Check that it runs "
                "and is not overloaded (restart it if it hangs).") from exc
        if cause == "unreachable":
            raise StoreUnavailableError(
                f"{what} failed: cannot reach the Chroma server at {settings.store.url} "
                f"({detail}). Start it or fix store.url / QABOT_STORE_URL.") from exc
        if cause in ("full", "read-only"):
            raise _write_failure(cause, what, where(settings), detail) from exc
        raise IndexCorruptError(f"{what} failed ({where(settings)}): {detail}. Rebuild "
                                "with `qabot ingest --rebuild`.") from exc


def _write_failure(cause: str, what: str, where: str, detail: str) -> StoreWriteError:
    """The error for a disk that is full or cannot be written: the cause and the fix,
    never "rebuild" (a rebuild needs the same disk)."""
    if cause == "full":
        return StoreWriteError(f"{what} failed: the disk holding {where} is full ({detail}). "
                               "Free some space and run the command again; the index that "
                               "was live before is unchanged.")
    return StoreWriteError(f"{what} failed: {where} cannot be written ({detail}). Make it "
                           "writable, or set QABOT_HOME to a writable folder.")


def _cause(exc: BaseException) -> str:
    """What a store failure comes down to: "timeout", "unreachable", "full",
    "read-only", or "" (anything else: taken for damage). Reads the whole chain, since
    Chroma wraps its causes (ENOSPC arrives as "Error in compaction")."""
    import errno

    seen: BaseException | None = exc
    while seen is not None:
        kind, text = type(seen), str(seen).lower()
        if kind.__module__.startswith("httpx"):
            return "timeout" if "Timeout" in kind.__name__ else "unreachable"
        if isinstance(seen, TimeoutError):
            return "timeout"
        if isinstance(seen, ConnectionError):
            return "unreachable"
        if getattr(seen, "errno", None) in (errno.ENOSPC, errno.EDQUOT) \
                or "no space left" in text or "disk is full" in text \
                or "database or disk is full" in text:
            return "full"
        if getattr(seen, "errno", None) in (errno.EROFS, errno.EACCES, errno.EPERM) \
                or "readonly database" in text or "read-only file system" in text:
            return "read-only"
        seen = seen.__cause__ or seen.__context__
    return ""


@contextlib.contextmanager
def native_stderr_to_log() -> Iterator[None]:
    """Chroma's Rust core prints a panic's message and backtrace straight to file
    descriptor 2 before raising PanicException (a damaged chroma.sqlite3 does it while
    the store opens). Catch what is written there meanwhile: a panic goes to the debug
    log, so the user sees our one-line error; anything else is passed on unchanged."""
    import sys
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            written = tmp.read()
            if b"panicked at" in written:
                log.debug("Chroma's native core: %s", written.decode("utf-8", "replace"))
            elif written:
                os.write(2, written)


def collection_name(settings: Settings, kind: str) -> str:
    return f"{settings.store.collection}-{kind}"


def where(settings: Settings) -> str:
    return f"server {settings.store.url}" if settings.store.url else \
        str(settings.home)


def client_for(settings: Settings, build: Path) -> Any:
    """An embedded PersistentClient under home, or an HttpClient for store.url."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.store.url:
        from urllib.parse import urlparse

        url = urlparse(settings.store.url)
        try:
            return _http_client(settings, url.hostname or "127.0.0.1",
                                url.port or (443 if url.scheme == "https" else 80),
                                url.scheme == "https", chroma_settings)
        except StoreUnavailableError:
            raise
        except Exception as exc:
            raise StoreUnavailableError(
                f"Cannot reach the Chroma server at {settings.store.url} ({exc}). Start it "
                "(`chroma run --path DIR --host HOST --port PORT`) or fix store.url / "
                "QABOT_STORE_URL.") from exc
    path = build / "chroma"
    path.mkdir(parents=True, exist_ok=True)
    with chroma_errors(settings, f"Opening the Chroma store {path}"), \
            native_stderr_to_log():
        return chromadb.PersistentClient(path=str(path), settings=chroma_settings)


def _http_client(settings: Settings, host: str, port: int, ssl: bool,
                 chroma_settings: Any) -> Any:
    """chromadb's HttpClient with timeouts (``store.timeout``). chromadb makes its httpx
    session with ``timeout=None`` and accepts no other client class, so a server that
    takes connections and never answers (stopped, wedged) would hold ``ask`` and a bot
    worker without end. So: the session gets connect/read/write timeouts as soon as the
    client exists, and making the client (which already talks to the server) runs in a
    daemon thread waited on for at most the timeout; if it hangs there, it is left
    behind and the caller gets the error."""
    import threading

    import chromadb
    import httpx

    seconds = settings.store.timeout
    done: dict[str, Any] = {}

    def connect() -> None:
        try:
            client = chromadb.HttpClient(host=host, port=port, ssl=ssl,
                                         settings=chroma_settings)
            session = getattr(getattr(client, "_server", None), "_session", None)
            if isinstance(session, httpx.Client):
                session.timeout = httpx.Timeout(seconds)
            else:  # chromadb's internals moved: still works, only without the timeout
                log.warning("cannot set store.timeout on chromadb's HTTP client; a hung "
                            "Chroma server may block answers")
            client.heartbeat()
            done["client"] = client
        except Exception as exc:
            done["error"] = exc

    worker = threading.Thread(target=connect, name="qabot-chroma-connect", daemon=True)
    worker.start()
    worker.join(seconds)
    if "client" in done:
        return done["client"]
    if "error" in done and _cause(done["error"]) != "timeout":
        raise done["error"]
    raise StoreUnavailableError(
        f"The Chroma server at {settings.store.url} did not answer within store.timeout = "
        f"{seconds:g} s: it is hung or overloaded. Restart it (`chroma run ...`), or raise "
        "store.timeout for a slow network.")


def serving_client(settings: Settings, build: Path) -> Any:
    """The embedded store for answering. Chroma writes to its database even to read it,
    so on a read-only volume or a full disk it cannot open where it lies: then a copy in
    a temporary folder answers (removed when the process ends), and a warning says so.
    The rest of a build (sentence vectors, BM25) is read through memory maps, in place."""
    try:
        return client_for(settings, build)
    except StoreWriteError as exc:
        import atexit
        import shutil
        import tempfile

        import chromadb
        from chromadb.config import Settings as ChromaSettings

        scratch = Path(tempfile.mkdtemp(prefix="qabot-readonly-"))
        atexit.register(shutil.rmtree, scratch, ignore_errors=True)
        log.warning("%s; answering from a copy of the store in %s", exc, scratch)
        try:
            shutil.copytree(build / "chroma", scratch / "chroma")
        except (OSError, shutil.Error) as copy_exc:
            raise exc from copy_exc  # no room for the copy either: the first cause stands
        with chroma_errors(settings, f"Opening a copy of the Chroma store in {scratch}"), \
                native_stderr_to_log():
            return chromadb.PersistentClient(path=str(scratch / "chroma"),
                                             settings=ChromaSettings(anonymized_telemetry=False))


def write_errors(settings: Settings, what: str) -> contextlib.AbstractContextManager[None]:
    """For writers (ingest, remove): OSError and shutil.Error (disk full, read-only, a
    home that is a file) become StoreWriteError naming the cause; Chroma's own errors
    are converted as everywhere (``_chroma_errors``)."""
    return _write_errors(settings, what)


@contextlib.contextmanager
def _write_errors(settings: Settings, what: str) -> Iterator[None]:
    import shutil

    try:
        yield
    except (OSError, shutil.Error) as exc:
        if isinstance(exc, (FileExistsError, NotADirectoryError)) \
                and not settings.home.is_dir():
            raise StoreWriteError(f"{what} failed: {settings.home} is a file, not a folder. "
                                  "Set QABOT_HOME (paths.home) to a folder.") from exc
        first = exc.args[0][0] if isinstance(exc, shutil.Error) and exc.args \
            and isinstance(exc.args[0], list) and exc.args[0] else None
        # shutil.Error holds a list of (source, destination, message): show one message
        detail = (str(first[2]) if first else str(exc)).splitlines()[0][:300]
        cause = _cause(exc)
        if cause in ("full", "read-only"):
            raise _write_failure(cause, what, str(settings.home), detail) from exc
        raise StoreWriteError(f"{what} failed: {detail}. The index that was live before "
                              "is unchanged.") from exc


def read_info(client: Any, settings: Settings) -> dict[str, Any] | None:
    from chromadb.errors import NotFoundError

    try:
        with chroma_errors(settings, "Reading the index record"):
            got = client.get_collection(collection_name(settings, INFO),
                                        embedding_function=None).get(
                ids=["index"], include=["documents"])
    except IndexCorruptError as exc:
        if isinstance(exc.__cause__, NotFoundError):  # nothing ingested under this prefix
            return None
        raise
    if not got["ids"]:
        return None
    try:
        info = json.loads(got["documents"][0])
    except ValueError as exc:
        raise IndexCorruptError(f"The index record on {settings.store.url} is unreadable "
                                f"({exc}). Rebuild with `qabot ingest --rebuild`.") from exc
    return {**info, "files": info.get("files", {})}


def write_info(client: Any, settings: Settings, manifest: dict[str, Any]) -> None:
    """What a serving process needs from the manifest: the embedder, size, build time,
    and each document's metadata and chunk ids (for listing and evaluation); the file
    hashes and sentence ids stay with the ingesting process's manifest."""
    info = {k: manifest.get(k) for k in ("version", "embedder", "chunking", "pipeline",
                                          "chunk_count", "built_at", "build_id")}
    info["files"] = {src: {"meta": e.get("meta", {}), "chunks": e.get("chunks", [])}
                     for src, e in manifest["files"].items()}
    with chroma_errors(settings, "Writing the index record"):
        collection = client.get_or_create_collection(collection_name(settings, INFO),
                                                     embedding_function=None)
        collection.upsert(ids=["index"], documents=[json.dumps(info, ensure_ascii=False)],
                          embeddings=[[0.0]])
