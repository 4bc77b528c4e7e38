"""Ingest against a real on-disk Chroma: idempotence, updates, deletions, errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SEED, make_settings

from bot import tokens
from bot.builds import live_build
from bot.embeddings import HashingEmbeddings, make_embeddings
from bot.engine import Engine
from bot.errors import EmbedderMismatchError, IndexCorruptError, IndexMissingError
from bot.ingest import ingest
from bot.sentences import split_sentences
from bot.sessions import SessionStore
from bot.store import Index


def live(home: Path) -> Path:
    """The live build's directory (store.py: builds/<CURRENT>)."""
    build = live_build(home)
    assert build is not None
    return build


class CountingEmbeddings(HashingEmbeddings):
    """The hashing embedder, counting every text it is asked to embed."""

    def __init__(self) -> None:
        super().__init__()
        self.embedded = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.embedded += len(texts)
        return super().embed_documents(texts)


def test_reingest_of_unchanged_files_embeds_nothing(hashing_settings) -> None:
    emb = CountingEmbeddings()
    first = ingest(hashing_settings, [hashing_settings.docs_dir], emb)
    assert first.added_files == 1 and first.chunks > 10 and emb.embedded > first.chunks
    emb.embedded = 0
    again = ingest(hashing_settings, [hashing_settings.docs_dir], emb)
    assert emb.embedded == 0
    assert (again.unchanged_files, again.added_files, again.chunks) == (1, 0, first.chunks)


def test_changed_file_embeds_only_new_text_and_drops_stale_chunks(hashing_settings) -> None:
    emb = CountingEmbeddings()
    ingest(hashing_settings, [hashing_settings.docs_dir], emb)
    doc = hashing_settings.docs_dir / SEED.name
    doc.write_text(doc.read_text("utf-8").replace("1.4亿元", "1.5亿元"), "utf-8")
    emb.embedded = 0
    report = ingest(hashing_settings, [hashing_settings.docs_dir], emb)
    assert report.changed_files == 1
    assert 0 < report.embedded_chunks <= 3 and report.deleted_chunks == report.embedded_chunks
    index = Index.open(hashing_settings, emb)
    hits = index.bm25_search("1.5亿元 综合病房大楼", 3)
    texts = index.get_chunks([i for i, _ in hits])
    assert any("1.5亿元" in d.page_content for d in texts.values())
    assert not index.bm25_search("1.4亿元", 3) or all(
        "1.4亿元" not in d.page_content
        for d in index.get_chunks([i for i, _ in index.bm25_search("1.4亿元", 3)]).values())


def test_deleted_file_leaves_the_index(hashing_settings) -> None:
    emb = HashingEmbeddings()
    extra = hashing_settings.docs_dir / "extra.md"
    extra.write_text("# 附加\n\n一个独特的词:鹦鹉螺。", "utf-8")
    first = ingest(hashing_settings, [hashing_settings.docs_dir], emb)
    assert first.documents == 2
    extra.unlink()
    report = ingest(hashing_settings, [hashing_settings.docs_dir], emb)
    assert report.removed_files == 1 and report.documents == 1
    index = Index.open(hashing_settings, emb)
    assert index.bm25_search("鹦鹉螺", 5) == []
    assert index.chunk_count == first.chunks - report.deleted_chunks


def test_bad_file_is_skipped_and_the_rest_indexed(hashing_settings) -> None:
    (hashing_settings.docs_dir / "broken.txt").write_bytes(b"\x00\x01\x02binary")
    report = ingest(hashing_settings, [hashing_settings.docs_dir], HashingEmbeddings())
    assert report.documents == 1 and len(report.skipped) == 1
    assert "broken.txt looks binary" in report.skipped[0]


def test_missing_index_says_how_to_build_it(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "nothing", **{"embeddings.backend": "hashing"})
    with pytest.raises(IndexMissingError, match="qabot ingest"):
        Index.open(settings, HashingEmbeddings())


def test_embedder_mismatch_is_refused_until_rebuild(hashing_settings) -> None:
    ingest(hashing_settings, [hashing_settings.docs_dir], HashingEmbeddings())

    class Other(HashingEmbeddings):
        identity = "hashing:other"

    with pytest.raises(EmbedderMismatchError, match="ingest --rebuild"):
        Index.open(hashing_settings, Other())
    with pytest.raises(EmbedderMismatchError, match="ingest --rebuild"):
        ingest(hashing_settings, [hashing_settings.docs_dir], Other())
    report = ingest(hashing_settings, [hashing_settings.docs_dir], Other(), rebuild=True)
    assert report.added_files == 1
    assert Index.open(hashing_settings, Other()).manifest["embedder"] == "hashing:other"


def test_corrupt_manifest_and_store_are_reported_and_kept(hashing_settings) -> None:
    ingest(hashing_settings, [hashing_settings.docs_dir], HashingEmbeddings())
    manifest = live(hashing_settings.home) / "manifest.json"
    good = manifest.read_text("utf-8")
    manifest.write_text("{not json", "utf-8")
    with pytest.raises(IndexCorruptError, match="--rebuild"):
        Index.open(hashing_settings, HashingEmbeddings())
    assert manifest.read_text("utf-8") == "{not json"  # nothing deleted behind the user's back
    manifest.write_text(good, "utf-8")
    bm25_ids = live(hashing_settings.home) / "bm25" / "ids.json"
    bm25_ids.write_text("garbage", "utf-8")
    with pytest.raises(IndexCorruptError, match="BM25 index"):
        Index.open(hashing_settings, HashingEmbeddings())


def test_changed_chunking_rechunks_without_reembedding_shared_sentences(hashing_settings) -> None:
    emb = CountingEmbeddings()
    first = ingest(hashing_settings, [hashing_settings.docs_dir], emb)
    sentences = first.embedded_sentences
    bigger = hashing_settings.replace({"chunking.size": 400})
    emb.embedded = 0
    report = ingest(bigger, [bigger.docs_dir], emb)
    assert report.changed_files == 1 and report.chunks < first.chunks
    assert report.embedded_sentences == 0 and emb.embedded == report.embedded_chunks
    manifest = json.loads((live(bigger.home) / "manifest.json").read_text("utf-8"))
    assert manifest["chunking"] == {"size": 400, "overlap": bigger.chunking.overlap,
                                    "unit": emb.token_unit}
    assert sentences > 0


def test_engine_answers_from_a_fresh_index_with_the_hashing_embedder(hashing_settings) -> None:
    ingest(hashing_settings, [hashing_settings.docs_dir], HashingEmbeddings())
    engine = Engine(hashing_settings, embeddings=make_embeddings(hashing_settings.embeddings),
                    sessions=SessionStore(":memory:"))
    answer = engine.answer("霍城县江苏医院综合病房大楼总投资多少?")
    assert not answer.refused and answer.short_answer == "1.4亿元"
    cited = answer.citations[0]
    assert cited.text == (hashing_settings.docs_dir / SEED.name).read_text("utf-8")[
        cited.start:cited.end]


def test_index_survives_being_moved(hashing_settings, tmp_path: Path) -> None:
    ingest(hashing_settings, [hashing_settings.docs_dir], HashingEmbeddings())
    moved = tmp_path / "moved"
    shutil.copytree(hashing_settings.home, moved)
    settings = hashing_settings.replace({"paths.home": str(moved)})
    assert Index.open(settings, HashingEmbeddings()).chunk_count > 0


def test_a_manifest_out_of_step_with_the_store_is_reported(hashing_settings) -> None:
    ingest(hashing_settings, [hashing_settings.docs_dir], HashingEmbeddings())
    manifest = live(hashing_settings.home) / "manifest.json"
    data = json.loads(manifest.read_text("utf-8"))
    data["chunk_count"] += 5
    manifest.write_text(json.dumps(data), "utf-8")
    with pytest.raises(IndexCorruptError, match="out of step"):
        Index.open(hashing_settings, HashingEmbeddings())


def test_questions_are_segmented_with_the_corpus_vocabulary(hashing_settings) -> None:
    ingest(hashing_settings, [hashing_settings.docs_dir], HashingEmbeddings())
    index = Index.open(hashing_settings, HashingEmbeddings())
    assert not index.segmenter.full
    # any text of the corpus comes out as the full dictionary cuts it...
    text = (hashing_settings.docs_dir / SEED.name).read_text("utf-8")
    for span in split_sentences(text):
        sentence = text[span.start:span.end]
        assert index.segmenter.tokenize(sentence) == tokens.FULL.tokenize(sentence), sentence
    # ...and question words are known, so they are dropped as stopwords, not split
    question = "霍城县江苏医院综合病房大楼总投资多少?"
    assert index.segmenter.tokenize(question) == tokens.FULL.tokenize(question)


def test_an_index_without_a_vocabulary_falls_back_to_the_full_dictionary(
        hashing_settings) -> None:
    ingest(hashing_settings, [hashing_settings.docs_dir], HashingEmbeddings())
    (live(hashing_settings.home) / "bm25" / "vocab.json").unlink()  # as built before it existed
    engine = Engine(hashing_settings, embeddings=HashingEmbeddings(),
                    sessions=SessionStore(":memory:"))
    assert engine.index.segmenter is tokens.FULL
    assert engine.answer("霍城县江苏医院综合病房大楼总投资多少?").short_answer == "1.4亿元"


def test_answering_does_not_load_the_full_dictionary(hashing_home: Path) -> None:
    # what makes a cold `qabot ask` fast: only ingest needs jieba's 350,000 words
    code = ("from bot import tokens\nfrom bot.config import load_settings\n"
            "from bot.engine import Engine\n"
            "engine = Engine(load_settings())\n"
            "a = engine.answer('霍城县江苏医院综合病房大楼总投资多少?')\n"
            "print(a.short_answer, engine.index.segmenter.loaded, tokens.FULL.loaded)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"QABOT_HOME": str(hashing_home), "PATH": "/usr/bin:/bin",
                              "QABOT_EMBEDDINGS_BACKEND": "hashing"}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1.4亿元", "True", "False"]


def test_a_document_with_more_chunks_than_one_chroma_write_is_indexed(
        hashing_settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chroma refuses writes over its max batch size (5,461 here); 100,000 short lines
    crashed ingest. Writes go in batches, so any size indexes; a small batch makes the
    test quick and still crosses several boundaries."""
    from bot import index_writing

    monkeypatch.setattr(index_writing, "WRITE_BATCH", 7)
    lines = "\n".join(f"第{i}号仓库存放了{i * 3}箱货物。" for i in range(600))
    (hashing_settings.docs_dir / "big.txt").write_text(lines, "utf-8")
    emb = make_embeddings(hashing_settings.embeddings)
    report = ingest(hashing_settings, [hashing_settings.docs_dir], emb)
    assert report.chunks > 5 * 7
    Index.open(hashing_settings, emb)  # opens: manifest and store agree on the counts
    engine = Engine(hashing_settings, embeddings=emb, sessions=SessionStore(":memory:"))
    answer = engine.answer("第417号仓库存放了多少箱货物?")
    # every batch landed: the line from the middle of the file is found
    assert any("第417号仓库存放了1251箱" in c.text for c in [*answer.citations, *answer.related])
    # and removing it again deletes in batches too
    (hashing_settings.docs_dir / "big.txt").unlink()
    after = ingest(hashing_settings, [hashing_settings.docs_dir], emb)
    assert after.chunks < report.chunks
    Index.open(hashing_settings, emb)


# ----- builds: readers never see a half-made index ---------------------------------------
class KilledAfterFirstWrite(HashingEmbeddings):
    """Stands in for a process killed mid-ingest: the first batch is written, then the
    run dies. ``kill`` really sends SIGKILL to this process (used in a subprocess)."""

    def __init__(self, kill: bool = False) -> None:
        super().__init__()
        self.calls, self.kill = 0, kill

    def embed_documents(self, texts):
        # call 1 embeds the sentences, which Chroma then stores; call 2 (the chunks) dies
        self.calls += 1
        if self.calls == 2:
            if self.kill:
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError("killed")
        return super().embed_documents(texts)


def test_a_killed_ingest_leaves_the_previous_build_live_and_the_next_ingest_repairs(
        hashing_settings, tmp_path: Path) -> None:
    emb = HashingEmbeddings()
    ingest(hashing_settings, [hashing_settings.docs_dir], emb)
    before = live(hashing_settings.home)
    (hashing_settings.docs_dir / "new.md").write_text("# 新\n\n鹦鹉螺号潜艇下水了。", "utf-8")
    code = ("import sys; sys.path.insert(0, 'tests')\n"
            "from test_store import KilledAfterFirstWrite\n"
            "from bot.config import load_settings\nfrom bot.ingest import ingest\n"
            "s = load_settings()\n"
            "ingest(s, [s.docs_dir], KilledAfterFirstWrite(kill=True), rebuild=True)\n")
    env = {"QABOT_HOME": str(hashing_settings.home), "PATH": "/usr/bin:/bin",
           "QABOT_PATHS_DOCS": str(hashing_settings.docs_dir),
           "QABOT_EMBEDDINGS_BACKEND": "hashing"}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=Path(__file__).parent.parent,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == -9, out.stderr  # really killed, after writing its first batch
    half_made = [b for b in (hashing_settings.home / "builds").iterdir() if b != before]
    assert half_made and all(not (b / "manifest.json").exists() for b in half_made)
    # readers still get the complete previous build
    assert live(hashing_settings.home) == before
    engine = Engine(hashing_settings, embeddings=emb, sessions=SessionStore(":memory:"))
    assert engine.answer("霍城县江苏医院综合病房大楼总投资多少?").short_answer == "1.4亿元"
    # a plain ingest repairs: the new document is in, the half-made build is gone
    report = ingest(hashing_settings, [hashing_settings.docs_dir], emb)
    assert report.added_files == 1 and report.documents == 2
    assert sorted((hashing_settings.home / "builds").iterdir()) == sorted(
        {before, live(hashing_settings.home)})
    assert Index.open(hashing_settings, emb).bm25_search("鹦鹉螺号", 3)


def test_an_ingest_that_fails_midway_changes_nothing(hashing_settings) -> None:
    emb = HashingEmbeddings()
    ingest(hashing_settings, [hashing_settings.docs_dir], emb)
    before = live(hashing_settings.home)
    (hashing_settings.docs_dir / "new.md").write_text("# 新\n\n鹦鹉螺号潜艇下水了。", "utf-8")
    with pytest.raises(RuntimeError, match="killed"):
        ingest(hashing_settings, [hashing_settings.docs_dir], KilledAfterFirstWrite())
    assert live(hashing_settings.home) == before
    index = Index.open(hashing_settings, emb)
    assert index.document_count == 1 and not index.bm25_search("鹦鹉螺号", 3)


def test_an_unchanged_ingest_writes_no_new_build(hashing_settings) -> None:
    emb = HashingEmbeddings()
    ingest(hashing_settings, [hashing_settings.docs_dir], emb)
    before = live(hashing_settings.home)
    again = ingest(hashing_settings, [hashing_settings.docs_dir], emb)
    assert again.unchanged_files == 1 and live(hashing_settings.home) == before
    assert list((hashing_settings.home / "builds").iterdir()) == [before]


def test_a_running_engine_answers_from_each_new_build(hashing_settings) -> None:
    emb = HashingEmbeddings()
    ingest(hashing_settings, [hashing_settings.docs_dir], emb)
    engine = Engine(hashing_settings, embeddings=emb, sessions=SessionStore(":memory:"))
    assert engine.answer("霍城县江苏医院综合病房大楼总投资多少?").short_answer == "1.4亿元"
    first = live(hashing_settings.home)
    (hashing_settings.docs_dir / "new.md").write_text(
        "# 潜艇\n\n鹦鹉螺号潜艇于2026年下水,排水量为3000吨。", "utf-8")
    for _ in range(3):  # --rebuild deletes nothing the engine is reading
        ingest(hashing_settings, [hashing_settings.docs_dir], emb, rebuild=True)
        answer = engine.answer("鹦鹉螺号潜艇的排水量是多少?")
        # (the hashing embedder is too crude to answer it: what matters is that the
        # passages come from the new build)
        passages = answer.citations + answer.related
        assert passages and passages[0].source.endswith("new.md")
        assert engine.stats().documents == 2
    builds = sorted((hashing_settings.home / "builds").iterdir())
    assert len(builds) == 2 and first not in builds  # the live one and the one before


def test_an_index_in_the_single_build_layout_is_read_and_converted(hashing_settings) -> None:
    """Indexes made before builds/ existed keep working and move on the next ingest."""
    emb = HashingEmbeddings()
    chunks = ingest(hashing_settings, [hashing_settings.docs_dir], emb).chunks
    home = hashing_settings.home
    build = live(home)
    for name in ("chroma", "bm25", "sentences", "manifest.json"):
        shutil.move(str(build / name), str(home / name))
    shutil.rmtree(home / "builds")
    (home / "CURRENT").unlink()
    assert chunks > 0 and Index.open(hashing_settings, emb).chunk_count == chunks
    (hashing_settings.docs_dir / "new.md").write_text("# 新\n\n鹦鹉螺号潜艇下水了。", "utf-8")
    assert ingest(hashing_settings, [hashing_settings.docs_dir], emb).documents == 2
    assert live(home) != home and Index.open(hashing_settings, emb).document_count == 2
    assert (home / "chroma").exists()  # kept while it is the build before the live one
    (hashing_settings.docs_dir / "new.md").write_text("# 新\n\n鹦鹉螺号又下水了。", "utf-8")
    ingest(hashing_settings, [hashing_settings.docs_dir], emb)
    assert not (home / "chroma").exists() and not (home / "manifest.json").exists()
    assert not (home / "sentences").exists()


@pytest.mark.parametrize("damage", ["header", "data"])
def test_a_damaged_chroma_store_is_one_clear_error_and_rebuild_repairs_it(
        hashing_settings, capfd, damage) -> None:
    """header: page 1, where Chroma's Rust core panics while opening the store (a
    PanicException, which is no Exception); data: the last four fifths of the pages."""
    emb = HashingEmbeddings()
    ingest(hashing_settings, [hashing_settings.docs_dir], emb)
    db = live(hashing_settings.home) / "chroma" / "chroma.sqlite3"
    pages = db.stat().st_size // 4096
    with db.open("r+b") as fh:
        for page in [1] if damage == "header" else range(pages // 5, pages):
            fh.seek(page * 4096)
            fh.write(bytes(range(256)) * 16)  # a page of garbage
    with pytest.raises(IndexCorruptError, match="ingest --rebuild"):
        engine = Engine(hashing_settings, embeddings=emb, sessions=SessionStore(":memory:"))
        engine.answer("霍城县江苏医院综合病房大楼总投资多少?")
    with pytest.raises(IndexCorruptError, match="ingest --rebuild"):
        ingest(hashing_settings, [hashing_settings.docs_dir], emb)  # plain ingest: says so
    assert "panicked" not in capfd.readouterr().err
    report = ingest(hashing_settings, [hashing_settings.docs_dir], emb, rebuild=True)
    assert report.added_files == 1
    engine = Engine(hashing_settings, embeddings=emb, sessions=SessionStore(":memory:"))
    assert engine.answer("霍城县江苏医院综合病房大楼总投资多少?").short_answer == "1.4亿元"


def test_a_pointer_to_a_missing_build_is_reported_and_rebuild_works(hashing_settings) -> None:
    emb = HashingEmbeddings()
    chunks = ingest(hashing_settings, [hashing_settings.docs_dir], emb).chunks
    (hashing_settings.home / "CURRENT").write_text("no-such-build\n", "utf-8")
    with pytest.raises(IndexCorruptError, match="no-such-build"):
        Index.open(hashing_settings, emb)
    assert ingest(hashing_settings, [hashing_settings.docs_dir], emb,
                  rebuild=True).chunks == chunks > 0
    assert Index.open(hashing_settings, emb).chunk_count == chunks


def test_traditional_and_simplified_chinese_match_each_other(hashing_settings) -> None:
    docs = hashing_settings.docs_dir
    (docs / "trad.txt").write_text("東德歷史\n蘇聯軍隊於1994年撤離東德，結束了長期駐軍。\n",
                                   "utf-8")
    emb = HashingEmbeddings()
    ingest(hashing_settings, [docs], emb)
    index = Index.open(hashing_settings, emb)
    for question in ("苏联军队什么时候撤离东德?", "蘇聯軍隊什麼時候撤離東德?"):
        hits = index.bm25_search(question, 3)
        assert hits, question
        top = index.get_chunks([hits[0][0]])[hits[0][0]]
        assert top.metadata["source"].endswith("trad.txt")
        assert "蘇聯軍隊" in top.page_content  # the document's own characters are kept


def test_english_questions_over_english_text_count_lexical_evidence(hashing_settings) -> None:
    docs = hashing_settings.docs_dir
    (docs / "en.md").write_text(
        "# Submarines\n\nThe Nautilus submarine was launched in 1954 by the US Navy.\n", "utf-8")
    emb = HashingEmbeddings()
    ingest(hashing_settings, [docs], emb)
    engine = Engine(hashing_settings, embeddings=emb, sessions=SessionStore(":memory:"))
    english = engine.answer("When was the Nautilus submarine launched?")
    assert english.evidence.features["same_script"] == 1.0
    assert english.evidence.source.endswith("en.md")
    chinese = engine.answer("霍城县江苏医院综合病房大楼总投资多少?")
    assert chinese.evidence.features["same_script"] == 1.0


def _sentences_back_into_chroma(settings) -> dict[str, list[float]]:
    """Turn the live build into the layout of builds made before sentences/ existed:
    its sentence vectors in a Chroma collection, no sentences/ folder, no count."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    build = live(settings.home)
    index = Index.open(settings, HashingEmbeddings())
    entries = json.loads((build / "manifest.json").read_text("utf-8"))
    ids = [i for e in entries["files"].values() for i in e["sentences"]]
    vectors = {i: v.tolist() for i, v in index.sentence_vectors(ids).items()}
    index.close()
    assert len(vectors) == len(set(ids)) > 0
    client = chromadb.PersistentClient(path=str(build / "chroma"),
                                       settings=ChromaSettings(anonymized_telemetry=False))
    old = client.create_collection(f"{settings.store.collection}-sentences",
                                   embedding_function=None, metadata={"hnsw:space": "cosine"})
    old.add(ids=list(vectors), embeddings=list(vectors.values()),
            documents=["(text)"] * len(vectors))
    shutil.rmtree(build / "sentences")
    del entries["sentence_count"]
    (build / "manifest.json").write_text(json.dumps(entries), "utf-8")
    return vectors


def test_sentences_kept_in_chroma_by_an_older_build_are_read_and_moved_without_embedding(
        hashing_settings) -> None:
    ingest(hashing_settings, [hashing_settings.docs_dir], HashingEmbeddings())
    vectors = _sentences_back_into_chroma(hashing_settings)
    question = "霍城县江苏医院综合病房大楼总投资多少?"
    engine = Engine(hashing_settings, embeddings=HashingEmbeddings(),
                    sessions=SessionStore(":memory:"))
    assert engine.answer(question).short_answer == "1.4亿元"  # read from the old collection
    engine.index.close()
    emb = CountingEmbeddings()
    report = ingest(hashing_settings, [hashing_settings.docs_dir], emb)
    assert report.unchanged_files == 1 and emb.embedded == 0
    build = live(hashing_settings.home)
    assert (build / "sentences" / "meta.json").is_file()
    index = Index.open(hashing_settings, HashingEmbeddings())
    moved = index.sentence_vectors(list(vectors))
    assert moved.keys() == vectors.keys()
    assert all(moved[i].tolist() == pytest.approx(vectors[i]) for i in vectors)
    assert "sentences" not in " ".join(c.name for c in index._client.list_collections())
    index.close()


def test_damaged_sentence_vectors_are_one_clear_error_and_rebuild_repairs_them(
        hashing_settings) -> None:
    ingest(hashing_settings, [hashing_settings.docs_dir], HashingEmbeddings())
    vectors = live(hashing_settings.home) / "sentences" / "vectors.npy"
    vectors.write_bytes(vectors.read_bytes()[:-4096])
    with pytest.raises(IndexCorruptError, match=r"sentence vectors.*--rebuild"):
        Index.open(hashing_settings, HashingEmbeddings())
    ingest(hashing_settings, [hashing_settings.docs_dir], HashingEmbeddings(), rebuild=True)
    assert Index.open(hashing_settings, HashingEmbeddings()).chunk_count > 0
