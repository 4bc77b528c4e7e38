"""The sentence-vector store of a local build (bot/vectors.py), on real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.errors import IndexCorruptError
from bot.vectors import SentenceVectors, SentenceWriter


def sid(n: int) -> str:
    """A sentence id of the real shape (24 hex digits), distinct per n."""
    return f"{n:024x}"


def vectors(rows: int, seed: int, dim: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)


def test_written_vectors_come_back_by_id_and_unknown_ids_are_left_out(tmp_path: Path) -> None:
    v = vectors(10_000, 1)  # more than one copy block (4,096 rows)
    writer = SentenceWriter(tmp_path / "s")
    for at in range(0, 10_000, 3_000):  # several writes, as an ingest flushes
        writer.add([sid(i) for i in range(at, min(at + 3_000, 10_000))], v[at:at + 3_000])
    assert writer.commit() == 10_000
    store = SentenceVectors.open(tmp_path / "s")
    asked = [sid(9_999), sid(0), sid(123_456), sid(4_097), sid(0)]
    got = store.get(asked)
    assert list(got) == [sid(9_999), sid(0), sid(4_097)]
    for i in (9_999, 0, 4_097):
        assert np.array_equal(got[sid(i)], v[i])
    assert not (tmp_path / "s" / "pending.f32").exists()


def test_a_new_build_keeps_the_base_rows_not_deleted_and_takes_new_ones(tmp_path: Path) -> None:
    base_v, new_v = vectors(5_000, 2), vectors(3, 3)
    first = SentenceWriter(tmp_path / "a")
    first.add([sid(i) for i in range(5_000)], base_v)
    first.commit()
    second = SentenceWriter(tmp_path / "b", base=tmp_path / "a")
    second.add([sid(7), sid(9_000), sid(9_001)], new_v)  # 7 is written again: new wins
    second.delete([sid(1), sid(4_999), sid(9_001)])  # 9_001: added, then found stale
    assert second.commit() == 5_000 - 2 + 1
    store = SentenceVectors.open(tmp_path / "b")
    got = store.get([sid(i) for i in (0, 1, 7, 4_998, 4_999, 9_000, 9_001)])
    assert sorted(got) == sorted([sid(0), sid(7), sid(4_998), sid(9_000)])
    assert np.array_equal(got[sid(0)], base_v[0]) and np.array_equal(got[sid(7)], new_v[0])
    assert np.array_equal(got[sid(9_000)], new_v[1])
    # the base build is untouched: readers of the previous build still see it whole
    assert len(SentenceVectors.open(tmp_path / "a")) == 5_000


def test_an_empty_store_and_one_emptied_by_deletes_open_and_answer_nothing(
        tmp_path: Path) -> None:
    assert SentenceWriter(tmp_path / "e").commit() == 0
    assert SentenceVectors.open(tmp_path / "e").get([sid(1)]) == {}
    full = SentenceWriter(tmp_path / "f")
    full.add([sid(1)], vectors(1, 4))
    full.commit()
    emptied = SentenceWriter(tmp_path / "g", base=tmp_path / "f")
    emptied.delete([sid(1)])
    assert emptied.commit() == 0 and len(SentenceVectors.open(tmp_path / "g")) == 0


def test_vectors_of_another_dimension_and_ids_of_another_shape_are_refused(
        tmp_path: Path) -> None:
    writer = SentenceWriter(tmp_path / "s")
    writer.add([sid(1)], vectors(1, 5, dim=8))
    with pytest.raises(ValueError, match="dimension 4, expected 8"):
        writer.add([sid(2)], vectors(1, 6, dim=4))
    with pytest.raises(ValueError, match="24 ASCII characters"):
        writer.add([sid(3) + "0"], vectors(1, 7))  # would be cut to sid(3)'s first 24


@pytest.mark.parametrize("damage", ["meta", "truncated", "ids"])
def test_a_damaged_store_is_a_clear_error(tmp_path: Path, damage: str) -> None:
    writer = SentenceWriter(tmp_path / "s")
    writer.add([sid(i) for i in range(100)], vectors(100, 7))
    writer.commit()
    folder = tmp_path / "s"
    if damage == "meta":
        (folder / "meta.json").write_text("{not json", "utf-8")
    elif damage == "truncated":
        data = (folder / "vectors.npy").read_bytes()
        (folder / "vectors.npy").write_bytes(data[:len(data) // 2])
    else:
        np.save(folder / "ids.npy", np.array([sid(1)], dtype="S24"))
    with pytest.raises(IndexCorruptError, match=r"unreadable.*qabot ingest --rebuild"):
        SentenceVectors.open(folder)
