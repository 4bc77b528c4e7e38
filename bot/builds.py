"""The build layout under the state folder (see bot/store.py for the whole picture):
which build is live (``CURRENT``), each build's manifest, and how an ingest copies the
live build, makes its new one live and prunes the rest. bot/ingest.py writes builds;
bot/store.py opens the live one. ``writer_lock`` keeps it to one writer at a time
(``ingest.lock``).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bot.errors import IndexBusyError, IndexCorruptError
from bot.files import atomic_write

CURRENT = "CURRENT"  # names the live build (one line); replaced atomically
BUILDS = "builds"


def live_build(home: Path) -> Path | None:
    """The directory of the live build: ``builds/<CURRENT>``, or home itself for an index
    made before builds/ existed (and for the Chroma-server layout); None when none."""
    pointer = home / CURRENT
    try:
        name = pointer.read_text("utf-8").strip()
    except FileNotFoundError:
        return home if (home / "manifest.json").exists() else None
    except OSError as exc:
        raise IndexCorruptError(f"{pointer} is unreadable ({exc}). Rebuild with "
                                "`qabot ingest --rebuild`.") from exc
    build = home / BUILDS / name
    if not name or Path(name).name != name or not (build / "manifest.json").is_file():
        raise IndexCorruptError(f"{pointer} names the build {name!r}, which is not there. "
                                "Rebuild with `qabot ingest --rebuild`.")
    return build


def read_manifest(home: Path) -> dict[str, Any] | None:
    """The live build's manifest, or None when nothing was built under ``home``."""
    build = live_build(home)
    return None if build is None else manifest_in(build)


def manifest_in(build: Path) -> dict[str, Any] | None:
    """The manifest of one build, or None when it has none (unfinished or legacy)."""
    path = build / "manifest.json"
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text("utf-8"))
        if not isinstance(manifest, dict) or "files" not in manifest:
            raise ValueError("missing 'files'")
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"The index manifest {path} is unreadable ({exc}). "
                                "Rebuild with `qabot ingest --rebuild`.") from exc
    return manifest


def write_manifest(build: Path, manifest: dict[str, Any]) -> None:
    atomic_write(build / "manifest.json", json.dumps(manifest, ensure_ascii=False, indent=1))


def copy_store(src: Path, dst: Path) -> None:
    """Copy a Chroma directory that readers may have open (no writer: we hold the lock).
    SQLite files go through SQLite's backup API, which reads a consistent snapshot
    (its -wal and -shm companions are folded in); the vector segments are plain files."""
    import shutil
    import sqlite3

    if not src.is_dir():
        return
    dst.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.is_dir():
            shutil.copytree(item, dst / item.name)
        elif item.suffix == ".sqlite3":
            try:
                with contextlib.closing(sqlite3.connect(f"file:{item}?mode=ro", uri=True)) as a, \
                        contextlib.closing(sqlite3.connect(dst / item.name)) as b:
                    a.backup(b)
            except sqlite3.DatabaseError as exc:
                raise IndexCorruptError(
                    f"The Chroma store {item} is damaged ({exc}). Rebuild with "
                    "`qabot ingest --rebuild`: it does not read the damaged copy.") from exc
        elif not item.name.endswith(("-wal", "-shm", "-journal")):
            shutil.copy2(item, dst / item.name)


def make_live(home: Path, build: Path) -> None:
    """Point CURRENT at ``build``: one rename, so a reader sees the old build or the new."""
    atomic_write(home / CURRENT, build.name + "\n")
    with contextlib.suppress(OSError):  # make the rename itself durable
        fd = os.open(home, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def prune(home: Path, *, keep: set[Path | None]) -> None:
    """Delete builds other than ``keep`` (the new one, and the previous for processes
    still answering from it), and the pre-builds/ layout once it is not among them."""
    import shutil

    for build in _builds(home):
        if build not in keep:
            shutil.rmtree(build, ignore_errors=True)
    if home not in keep:
        for name in ("chroma", "bm25", "sentences"):
            shutil.rmtree(home / name, ignore_errors=True)
        (home / "manifest.json").unlink(missing_ok=True)


def _builds(home: Path) -> list[Path]:
    folder = home / BUILDS
    return list(folder.iterdir()) if folder.is_dir() else []


def clear_unfinished(home: Path) -> None:
    """Remove builds without a manifest: an ingest was killed while making them."""
    import shutil

    for build in _builds(home):
        if not (build / "manifest.json").is_file():
            shutil.rmtree(build, ignore_errors=True)


@contextlib.contextmanager
def writer_lock(home: Path) -> Iterator[None]:
    """One writer per index: two ingests at once left manifest and store out of step.
    An OS file lock, so a writer killed with -9 releases it with its process (no stale
    lock to clear by hand). It guards one home directory; writers on other machines
    sharing a Chroma server are not covered."""
    import fcntl

    home.mkdir(parents=True, exist_ok=True)
    path = home / "ingest.lock"
    fh = path.open("a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            pid = fh.read().strip() or "unknown"
            raise IndexBusyError(
                f"Another ingest is running on {home} (pid {pid}). Wait for it to finish, "
                "then run this again.") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        yield
    finally:
        fh.close()  # closing releases the lock
