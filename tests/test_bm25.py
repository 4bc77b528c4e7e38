"""The BM25 index: the scores bm25s gives with its defaults, from a build whose memory
does not grow with Python objects per token, read back memory-mapped."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from conftest import SEED

from bot import tokens
from bot.bm25 import Bm25
from bot.builds import live_build
from bot.chunking import chunk_document
from bot.embeddings import HashingEmbeddings
from bot.engine import Engine
from bot.errors import IndexCorruptError
from bot.ingest import ingest
from bot.loading import load
from bot.sessions import SessionStore

ENGLISH = [
    "The Grand Canal runs from Beijing to Hangzhou and is the longest canal in the world.",
    "Its oldest parts date back to the fifth century BC; the canal was extended later.",
    "A canal is an artificial waterway; the canal carries barges, and barges carry grain.",
    "Nothing here is about canals.",
    "",
]


def _corpus() -> list[tuple[str, str]]:
    doc = load(SEED, root=SEED.parent)
    texts = [c.text for c in chunk_document(doc, size=120, overlap=30)] + ENGLISH
    return [(f"c{i}", text) for i, text in enumerate(texts)]


def _queries(corpus: list[tuple[str, str]], n: int) -> list[list[str]]:
    """Token lists drawn from the corpus, some with a term twice."""
    rng = random.Random(7)
    vocab = sorted({t for _, text in corpus for t in tokens.tokenize(text)})
    out = [["canal", "canal", "barges"], ["医院", "投资"]]
    for _ in range(n):
        terms = rng.sample(vocab, rng.randint(1, 4))
        out.append(terms + terms[:1])
    return out


def test_scores_are_those_of_bm25s_with_its_defaults(tmp_path: Path) -> None:
    bm25s = pytest.importorskip("bm25s")
    corpus = _corpus()
    ours = Bm25.build(lambda: iter(corpus), tmp_path / "bm25", "b1")
    reference = bm25s.BM25()
    reference.index([tokens.tokenize(text) for _, text in corpus], show_progress=False)
    known = {t for _, text in corpus for t in tokens.tokenize(text)}
    for terms in _queries(corpus, 60):
        query = " ".join(terms)
        # the query's tokens, as search (and bm25s's caller before it) segments them
        asked = [t for t in tokens.tokenize(query) if t in known]
        if not asked:
            continue
        expected = reference.get_scores(asked)
        got = dict(ours.search(query, len(corpus)))
        for i, (chunk_id, _) in enumerate(corpus):
            assert got.get(chunk_id, 0.0) == pytest.approx(float(expected[i]), abs=1e-4), asked
        # ranked by score, ties by index order, zeros left out
        scores = list(got.values())
        assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)
    assert ours.search("canal", 2) == ours.search("canal", 10)[:2]


def test_a_saved_index_reads_back_the_same(tmp_path: Path) -> None:
    corpus = _corpus()
    built = Bm25.build(lambda: iter(corpus), tmp_path / "bm25", "b1")
    loaded = Bm25.load(tmp_path / "bm25")
    assert loaded.ids == built.ids and loaded.build_id == "b1"
    for terms in _queries(corpus, 20):
        query = " ".join(terms)
        assert loaded.search(query, 5) == built.search(query, 5)
        assert loaded.idf(terms[0]) == pytest.approx(built.idf(terms[0]))
    assert loaded.idf("never-seen-anywhere") > loaded.idf("canal")
    assert loaded.search("never-seen-anywhere", 5) == []


def test_an_empty_corpus_builds_and_finds_nothing(tmp_path: Path) -> None:
    bm25 = Bm25.build(lambda: iter([]), tmp_path / "bm25", None)
    assert bm25.search("anything", 5) == []
    assert Bm25.load(tmp_path / "bm25").search("anything", 5) == []


def test_damaged_arrays_are_reported_not_misread(tmp_path: Path) -> None:
    corpus = _corpus()
    Bm25.build(lambda: iter(corpus), tmp_path / "bm25", "b1")
    (tmp_path / "bm25" / "docs.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(IndexCorruptError, match="BM25 index"):
        Bm25.load(tmp_path / "bm25")


def test_an_older_format_cache_is_rebuilt_from_the_store(hashing_settings) -> None:
    ingest(hashing_settings, [hashing_settings.docs_dir], HashingEmbeddings())
    path = live_build(hashing_settings.home) / "bm25"
    before = json.loads((path / "ids.json").read_text("utf-8"))
    # as bm25s left it: its model/ folder and no weights.npy
    for name in ("weights.npy", "docs.npy", "indptr.npy"):
        (path / name).unlink()
    (path / "ids.json").write_text(json.dumps({"ids": before["ids"], "df": {}, "n": 1}))
    assert not Bm25.present(path)
    engine = Engine(hashing_settings, embeddings=HashingEmbeddings(),
                    sessions=SessionStore(":memory:"))
    assert engine.answer("霍城县江苏医院综合病房大楼总投资多少?").short_answer == "1.4亿元"
    assert Bm25.present(path)
    assert json.loads((path / "ids.json").read_text("utf-8"))["ids"] == before["ids"]
