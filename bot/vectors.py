"""Sentence vectors of a local build: memory-mapped arrays looked up by sentence id.

Sentences are only ever looked up by id (the sentences of the chunks a question's
retrieval found), never searched by nearest neighbour, so they need no vector index.
Chroma gave each one an HNSW node held in memory while it wrote (about 2.2 KB per
vector, measured): a 50 MB document has ~3 sentences per chunk, and its ingest peaked
at 1.4 GiB. Here a vector costs its bytes on disk, and a reader maps the files and
touches only the rows a question asks for.

Stored under ``<build>/sentences/``:

    meta.json     format, row count, dimension
    vectors.npy   float32 [n, dim], rows in the order they were written
    ids.npy       the sentence ids (24 ASCII hex digits) sorted, for a binary search
    rows.npy      int64 [n]: the row of vectors.npy holding ids[i]

A build is written once: ``SentenceWriter`` appends new vectors to a side file while
an ingest runs and, at ``commit``, writes the three arrays from the previous build's
kept rows and the new ones, block by block with plain file I/O (writing through a
map would count every written page in the process's resident memory). A Chroma
server keeps sentences in a collection instead (store.py): serving processes on
other machines read them from there.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bot.errors import IndexCorruptError
from bot.files import atomic_write

FORMAT = 1
ID_DTYPE = np.dtype("S24")  # chunking.sentence_id: 24 hex digits
VECTOR_DTYPE = np.dtype("<f4")  # what the embedders return; cosines stay as they were
# Rows copied per read and write at commit: 4,096 x 384 float32 is 6 MiB at a time.
_BLOCK = 4096
_PENDING = "pending.f32"


class SentenceVectors:
    """An opened sentence-vector store (read-only)."""

    def __init__(self, ids: Any, rows: Any, vectors: Any) -> None:
        self._ids, self._rows, self._vectors = ids, rows, vectors

    @classmethod
    def empty(cls) -> SentenceVectors:
        return cls(np.empty(0, ID_DTYPE), np.empty(0, np.int64),
                   np.empty((0, 0), VECTOR_DTYPE))

    @staticmethod
    def present(path: Path) -> bool:
        return (path / "meta.json").is_file()

    @classmethod
    def open(cls, path: Path) -> SentenceVectors:
        """Map the arrays under ``path``; IndexCorruptError when they are unreadable or
        disagree with each other."""
        try:
            meta = json.loads((path / "meta.json").read_text("utf-8"))
            if meta.get("format") != FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT}")
            n = int(meta["count"])
            if n == 0:
                return cls.empty()
            ids = np.load(path / "ids.npy", mmap_mode="r")
            rows = np.load(path / "rows.npy", mmap_mode="r")
            vectors = np.load(path / "vectors.npy", mmap_mode="r")
            if (ids.dtype != ID_DTYPE or ids.shape != (n,) or rows.shape != (n,)
                    or vectors.dtype != VECTOR_DTYPE
                    or vectors.shape != (n, int(meta["dim"]))):
                raise ValueError("arrays disagree with meta.json")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexCorruptError(
                f"The sentence vectors under {path} are unreadable ({exc}). Rebuild with "
                "`qabot ingest --rebuild`.") from exc
        return cls(ids, rows, vectors)

    def __len__(self) -> int:
        return int(self._ids.shape[0])

    def get(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The vectors of those of ``ids`` that are stored (unknown ids are left out)."""
        if not ids or not len(self):
            return {}
        wanted = list(dict.fromkeys(ids))
        keys = np.array(wanted, dtype=ID_DTYPE)
        at = np.minimum(np.searchsorted(self._ids, keys), len(self) - 1)
        hit = np.asarray(self._ids[at] == keys)
        rows = np.asarray(self._rows[at[hit]])
        vectors = np.asarray(self._vectors[rows], dtype=np.float32)  # a copy, not a map
        found = [w for w, h in zip(wanted, hit, strict=True) if h]
        return dict(zip(found, vectors, strict=True))

    def row_ids(self) -> Any:
        """Every id in row order (for a writer building on this store)."""
        out = np.empty(len(self), ID_DTYPE)
        out[np.asarray(self._rows)] = np.asarray(self._ids)
        return out


class SentenceWriter:
    """Writes the sentence vectors of a new build under ``path``, starting from the
    rows of ``base`` (the live build's store) that are not deleted."""

    def __init__(self, path: Path, base: Path | None = None) -> None:
        self.path = path
        self.base = base if base is not None and SentenceVectors.present(base) else None
        path.mkdir(parents=True, exist_ok=True)
        self._pending = open(path / _PENDING, "wb")  # noqa: SIM115 - closed by commit
        self._new: list[str] = []
        self._deleted: set[str] = set()
        self._dim: int | None = None

    def add(self, ids: Sequence[str], vectors: Sequence[Sequence[float]]) -> None:
        if not ids:
            return
        # S24 would silently cut a longer id and then find the wrong sentence
        if any(len(i) != ID_DTYPE.itemsize or not i.isascii() for i in ids):
            raise ValueError("sentence ids are 24 ASCII characters (chunking.sentence_id)")
        block = np.asarray(vectors, dtype=VECTOR_DTYPE)
        if block.ndim != 2 or block.shape[0] != len(ids):
            raise ValueError(f"{len(ids)} ids but vectors of shape {block.shape}")
        if self._dim is None:
            self._dim = int(block.shape[1])
        elif block.shape[1] != self._dim:
            raise ValueError(f"vectors of dimension {block.shape[1]}, expected {self._dim}")
        self._pending.write(block.tobytes())
        self._new += ids

    def delete(self, ids: Iterable[str]) -> None:
        self._deleted.update(ids)

    def commit(self) -> int:
        """Write the arrays and meta.json (last: it is what marks the store complete);
        the number of vectors stored."""
        self._pending.close()
        base = SentenceVectors.open(self.base) if self.base is not None else \
            SentenceVectors.empty()
        dim = self._dim
        if dim is None and len(base):
            dim = int(base._vectors.shape[1])
        new_ids = np.array(self._new, dtype=ID_DTYPE)
        # a vector written again in this run replaces the base's (there is one per id)
        drop = np.array(sorted(self._deleted), dtype=ID_DTYPE)
        base_ids = base.row_ids()
        keep_base = ~np.isin(base_ids, np.concatenate([drop, new_ids]))
        # the last copy of an id written twice wins, and deleted ones go
        _, last = np.unique(new_ids[::-1], return_index=True)
        keep_new = np.zeros(len(new_ids), bool)
        keep_new[len(new_ids) - 1 - last] = True
        keep_new &= ~np.isin(new_ids, drop)
        ids = np.concatenate([base_ids[keep_base], new_ids[keep_new]])
        count = int(ids.shape[0])
        if count:
            assert dim is not None
            with open(self.path / "vectors.npy", "wb") as out:
                np.lib.format.write_array_header_1_0(out, {
                    "descr": np.lib.format.dtype_to_descr(VECTOR_DTYPE),
                    "fortran_order": False, "shape": (count, dim)})
                if len(base):
                    assert self.base is not None
                    _copy_rows(self.base / "vectors.npy", keep_base, dim, out, header=True)
                _copy_rows(self.path / _PENDING, keep_new, dim, out, header=False)
                out.flush()
                os.fsync(out.fileno())
            order = np.argsort(ids, kind="stable")
            np.save(self.path / "ids.npy", ids[order])
            np.save(self.path / "rows.npy", order.astype(np.int64))
        (self.path / _PENDING).unlink(missing_ok=True)
        atomic_write(self.path / "meta.json",
                     json.dumps({"format": FORMAT, "count": count, "dim": dim or 0}))
        return count


def _copy_rows(source: Path, keep: Any, dim: int, out: Any, *, header: bool) -> None:
    """Append the rows of ``source`` that ``keep`` marks to ``out``, a block at a time,
    read with plain file I/O (a map's pages would stay resident: see the module note)."""
    row_bytes = dim * VECTOR_DTYPE.itemsize
    with open(source, "rb") as f:
        if header:
            np.lib.format.read_magic(f)
            np.lib.format.read_array_header_1_0(f)
        for at in range(0, len(keep), _BLOCK):
            mask = keep[at:at + _BLOCK]
            raw = f.read(row_bytes * len(mask))
            if len(raw) != row_bytes * len(mask):
                raise IndexCorruptError(f"{source} is shorter than its row count. Rebuild "
                                        "with `qabot ingest --rebuild`.")
            if mask.any():
                block = np.frombuffer(raw, VECTOR_DTYPE).reshape(len(mask), dim)
                out.write(block[mask].tobytes())
