"""The same store behaviour against an embedded Chroma and a real `chroma run` server."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from conftest import SEED, make_settings

from bot.embeddings import HashingEmbeddings, make_embeddings
from bot.engine import Engine
from bot.errors import IndexMissingError, StoreUnavailableError
from bot.ingest import ingest, remove
from bot.sessions import SessionStore
from bot.store import Index

QUESTION = "霍城县江苏医院综合病房大楼总投资多少?"


@pytest.fixture(params=["embedded", "server"])
def store_settings(request, tmp_path: Path, docs_dir: Path):
    """Settings for a fresh index in either mode (a unique collection on the server)."""
    extra: dict[str, object] = {"embeddings.backend": "hashing"}
    if request.param == "server":
        extra["store.url"] = request.getfixturevalue("chroma_server")
        extra["store.collection"] = f"t-{uuid.uuid4().hex[:12]}"
    return make_settings(tmp_path / "state", docs_dir, **extra)


def test_ingest_is_idempotent_and_incremental(store_settings) -> None:
    emb = HashingEmbeddings()
    first = ingest(store_settings, [store_settings.docs_dir], emb)
    again = ingest(store_settings, [store_settings.docs_dir], emb)
    assert (again.unchanged_files, again.embedded_chunks, again.chunks) == (1, 0, first.chunks)
    extra = store_settings.docs_dir / "extra.md"
    extra.write_text("# 附加\n\n一个独特的词:鹦鹉螺。", "utf-8")
    added = ingest(store_settings, [store_settings.docs_dir], emb)
    assert added.added_files == 1 and added.unchanged_files == 1
    index = Index.open(store_settings, emb)
    assert index.bm25_search("鹦鹉螺", 3)
    extra.unlink()
    gone = ingest(store_settings, [store_settings.docs_dir], emb)
    assert gone.removed_files == 1 and gone.chunks == first.chunks
    assert Index.open(store_settings, emb).bm25_search("鹦鹉螺", 3) == []


def test_answers_end_to_end(store_settings) -> None:
    ingest(store_settings, [store_settings.docs_dir], HashingEmbeddings())
    engine = Engine(store_settings, sessions=SessionStore(":memory:"))
    answer = engine.answer(QUESTION)
    assert answer.short_answer == "1.4亿元"
    c = answer.citations[0]
    assert (store_settings.docs_dir / SEED.name).read_text("utf-8")[c.start:c.end] == c.text


def test_remove_and_rebuild(store_settings) -> None:
    emb = HashingEmbeddings()
    ingest(store_settings, [store_settings.docs_dir], emb)
    report = remove(store_settings, [store_settings.docs_dir / SEED.name], emb)
    assert report.removed_files == 1 and report.chunks == 0
    rebuilt = ingest(store_settings, [store_settings.docs_dir], emb, rebuild=True)
    assert rebuilt.added_files == 1 and Index.open(store_settings, emb).chunk_count > 0


def test_a_serving_process_without_the_manifest_uses_the_server(chroma_server, tmp_path,
                                                                docs_dir) -> None:
    collection = f"t-{uuid.uuid4().hex[:12]}"
    common = {"embeddings.backend": "hashing", "store.url": chroma_server,
              "store.collection": collection}
    writer = make_settings(tmp_path / "writer", docs_dir, **common)
    chunks = ingest(writer, [docs_dir], HashingEmbeddings()).chunks
    reader = make_settings(tmp_path / "reader", docs_dir, **common)  # a different machine
    engine = Engine(reader, sessions=SessionStore(":memory:"))
    assert chunks > 0 and engine.stats().chunks == chunks
    assert engine.answer(QUESTION).short_answer == "1.4亿元"
    assert not (reader.home / "manifest.json").exists()
    other = make_settings(tmp_path / "x", docs_dir, **{**common, "store.collection": "t-none"})
    with pytest.raises(IndexMissingError, match="collection 't-none'"):
        Engine(other)


def test_an_unreachable_server_says_how_to_start_one(tmp_path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = make_settings(tmp_path, **{"store.url": f"http://127.0.0.1:{port}",
                                          "embeddings.backend": "hashing"})
    with pytest.raises(StoreUnavailableError, match="chroma run --path"):
        ingest(settings, [SEED], HashingEmbeddings())


@pytest.mark.slow
def test_real_embedder_against_the_server(chroma_server, tmp_path, docs_dir) -> None:
    settings = make_settings(tmp_path / "s", docs_dir, **{
        "store.url": chroma_server, "store.collection": f"t-{uuid.uuid4().hex[:12]}"})
    ingest(settings, [docs_dir], make_embeddings(settings.embeddings))
    engine = Engine(settings, sessions=SessionStore(":memory:"))
    engine.answer("澄远·火种计划是什么?", session="a")
    follow = engine.answer("它帮助了多少个村?", session="a")
    # the follow-up is answered from the passage its history points to
    assert any("帮助全县9个薄弱村" in q.text for q in follow.quotes)
    assert engine.answer("霍城县的总人口是多少?").refused


def test_a_servers_bm25_is_cached_per_build_and_never_stale(chroma_server, tmp_path,
                                                            docs_dir) -> None:
    import json

    common = {"embeddings.backend": "hashing", "store.url": chroma_server,
              "store.collection": f"t-{uuid.uuid4().hex[:12]}"}
    writer = make_settings(tmp_path / "writer", docs_dir, **common)
    reader = make_settings(tmp_path / "reader", docs_dir, **common)
    chunks = ingest(writer, [docs_dir], HashingEmbeddings()).chunks
    Index.open(reader, HashingEmbeddings())
    cached = json.loads((reader.home / "bm25" / "ids.json").read_text("utf-8"))
    first_build = cached["build"]
    assert first_build and len(cached["ids"]) == chunks > 0
    (docs_dir / "new.md").write_text("# 新文档\n\n鹦鹉螺号潜艇。", "utf-8")
    ingest(writer, [docs_dir], HashingEmbeddings())  # another process changes the index
    index = Index.open(reader, HashingEmbeddings())
    assert index.bm25_search("鹦鹉螺号", 3)  # the reader's copy was rebuilt, not reused
    rebuilt = json.loads((reader.home / "bm25" / "ids.json").read_text("utf-8"))
    assert rebuilt["build"] != first_build and len(rebuilt["ids"]) > chunks
