"""Text normalisation and word segmentation shared by BM25, the answerer and scoring.

jieba is imported on first use and keeps its dictionary cache under the state
directory (not /tmp). Its full dictionary (about 350,000 words) takes 0.3-0.9 s to
load, the largest part of a cold ``qabot ask``. So an index keeps, beside its BM25
model, the *vocabulary* of its corpus: every dictionary word jieba saw while
segmenting the corpus, the 20,000 commonest words (question words live there) and the
stopwords, with their dictionary frequencies. A ``Segmenter`` over that vocabulary
loads in milliseconds and segments any stretch of text that occurs in the corpus
exactly as the full dictionary would (same words, same frequencies, same total);
where they differ, a compound the corpus never contains (研究成果) comes out as its
parts (研究, 成果), which are what can match the corpus anyway. Ingest always uses the
full dictionary.
"""

from __future__ import annotations

import heapq
import json
import re
import threading
import unicodedata
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

_cache_dir: Path | None = None
# Words kept in a corpus vocabulary besides the corpus's own: the commonest of jieba's
# dictionary, where question words (多少, 哪里, 是谁) and everyday words live.
_COMMON_WORDS = 20_000

# Function words and question words: they match everywhere and decide nothing.
_STOPWORDS_TEXT = """
的 了 是 在 和 与 及 或 也 都 就 而 并 把 被 对 于 为 以 其 之 等 这 那
这个 那个 这些 那些 一个 有 又 还 中 上 下 个 吗 呢 吧 啊 呀 么
什么 哪 哪些 哪个 哪里 哪儿 哪年 几 多少 多 谁 何 何时 怎么 怎样
如何 为什么 为何 请问 请 告诉 我 你 他 她 它 我们 你们 他们 她们 它们
该 此 所 是否 有没有
时候 什么时候 哪一年 哪一天 哪一个 哪一位 哪一种 哪位 哪种 哪国 哪家 哪些地方 什么样
几个 多久 多大 多长 多高 多远 叫 会 来 着 过 要 做 约
a an the of to in on at by for with from and or is are was were be been being do does
did what which who whom whose when where why how much many this that these those it its
they them their there here as about into than then so if not no yes can could would
should will shall may might must has have had i you he she we us our your
"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())
_PUNCT_OR_SPACE = re.compile(r"^[\W_]+$", re.UNICODE)
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")


def set_cache_dir(path: Path) -> None:
    """Where jieba keeps its dictionary cache (call before the first segmentation)."""
    global _cache_dir
    _cache_dir = path


def normalize(text: str) -> str:
    """NFKC (full width to half width), traditional Chinese to simplified, lower case,
    whitespace collapsed. For matching only (segmentation, BM25, term overlap, answer
    scoring): quotes and citations keep the document's own characters and offsets."""
    text = unicodedata.normalize("NFKC", text)
    if _CJK.search(text):
        text = _simplified(text)
    return re.sub(r"\s+", " ", text).strip().lower()


_t2s: Any = None
_t2s_lock = threading.Lock()


def _simplified(text: str) -> str:
    """OpenCC's t2s: jieba's dictionary and every rule here are written for simplified
    characters (控制著東德 segmented as 著東德; 台灣 never matching 台湾). Phrase-level, so
    a result may differ in length from its input: never use it for offsets."""
    global _t2s
    if _t2s is None:
        with _t2s_lock:
            if _t2s is None:
                import opencc  # 10 ms to load the dictionaries, ~1 µs a question

                _t2s = opencc.OpenCC("t2s")
    return str(_t2s.convert(text))


def cjk_count(text: str) -> int:
    """How many CJK ideographs ``text`` holds (the basic and extension-A blocks and the
    compatibility ideographs)."""
    return len(_CJK.findall(text))


def is_mostly_cjk(text: str) -> bool:
    cjk = cjk_count(text)
    latin = sum(len(w) for w in _LATIN_WORD.findall(text))
    return cjk > 0 and cjk >= latin / 3


class Segmenter:
    """Search-mode jieba tokens; over the full dictionary, or over a corpus vocabulary
    (``Segmenter.load``)."""

    def __init__(self, vocabulary: Mapping[str, int] | None = None, total: int = 0) -> None:
        self._vocabulary = vocabulary
        self._total = total
        self._jieba: Any = None
        self._pos: Any = None
        self._lock = threading.Lock()
        self._tokenize_cached = lru_cache(maxsize=4096)(self._tokenize)

    @classmethod
    def load(cls, path: Path) -> Segmenter:
        data = json.loads(path.read_text("utf-8"))
        return cls(data["freq"], int(data["total"]))

    @property
    def full(self) -> bool:
        """Over jieba's full dictionary (not a corpus vocabulary)."""
        return self._vocabulary is None

    @property
    def loaded(self) -> bool:
        """Whether its dictionary has been loaded (it is, on first use)."""
        return self._jieba is not None

    def tokenize(self, text: str) -> list[str]:
        """Tokens of normalised text, without punctuation or stopwords."""
        return list(self._tokenize_cached(normalize(text)))

    def content_terms(self, text: str) -> list[str]:
        """Distinct tokens of a question in order, longest-first within overlaps removed."""
        seen: dict[str, None] = {}
        for tok in self.tokenize(text):
            seen.setdefault(tok, None)
        terms = list(seen)
        # search mode yields both 综合病房 and 病房; keep sub-terms only when alone
        return [t for t in terms if not any(t != o and t in o for o in terms)]

    @contextmanager
    def recording(self) -> Iterator[set[str]]:
        """Collect every dictionary word the segmenter considers while in the block
        (full dictionary only): the corpus vocabulary, for ``save_vocabulary``."""
        assert self.full, "only the full dictionary can record a vocabulary"
        tok = self._segmenter()
        seen: set[str] = set()
        freq = tok.FREQ
        plain = type(tok).get_DAG

        def get_dag(sentence: str) -> dict[int, list[int]]:
            dag: dict[int, list[int]] = plain(tok, sentence)
            for k, ends in dag.items():
                for j in ends:
                    word = sentence[k:j + 1]
                    if freq.get(word):
                        seen.add(word)
            return dag

        self._tokenize_cached.cache_clear()  # cached results would bypass the DAG
        tok.get_DAG = get_dag
        try:
            yield seen
        finally:
            del tok.get_DAG
            self._tokenize_cached.cache_clear()

    def save_vocabulary(self, words: set[str], path: Path) -> Segmenter:
        """Write ``words`` plus the common words and stopwords, with their dictionary
        frequencies, to ``path``; return a segmenter over them."""
        assert self.full
        tok = self._segmenter()
        freq = {w: f for w, f in tok.FREQ.items() if f}
        keep = set(heapq.nlargest(_COMMON_WORDS, freq, key=freq.__getitem__))
        keep |= words | {w for w in STOPWORDS if w in freq}
        vocabulary = {w: freq[w] for w in sorted(keep) if w in freq}
        partial = path.with_suffix(".tmp")  # never a half-written vocabulary
        partial.write_text(json.dumps({"total": tok.total, "freq": vocabulary},
                                      ensure_ascii=False), "utf-8")
        partial.replace(path)
        return Segmenter(vocabulary, tok.total)

    def _tokenize(self, text: str) -> tuple[str, ...]:
        return tuple(
            tok for tok in self._segmenter().lcut_for_search(text)
            if tok.strip() and not _PUNCT_OR_SPACE.match(tok) and tok not in STOPWORDS
        )

    def tagged(self, text: str) -> list[tuple[str, str]]:
        """(word, part-of-speech tag) pairs of ``text`` as written (jieba's posseg over
        this segmenter's dictionary; the tag table loads on first use, about 0.5 s)."""
        if self._pos is None:
            with self._lock:
                if self._pos is None:
                    import jieba.posseg

                    self._pos = jieba.posseg.POSTokenizer(self._segmenter_unlocked())
        return [(p.word, p.flag) for p in self._pos.cut(text)]

    def _segmenter_unlocked(self) -> Any:
        if self._jieba is None:
            self._jieba = self._build()
        return self._jieba

    def _segmenter(self) -> Any:  # -> jieba.Tokenizer
        if self._jieba is None:
            with self._lock:
                if self._jieba is None:
                    self._jieba = self._build()
        return self._jieba

    def _build(self) -> Any:
        import logging

        import jieba

        jieba.setLogLevel(logging.WARNING)
        tok = jieba.Tokenizer()
        if self._vocabulary is None:
            if _cache_dir is not None:
                _cache_dir.mkdir(parents=True, exist_ok=True)
                tok.tmp_dir = str(_cache_dir)
            tok.initialize()
            return tok
        # jieba's prefix dictionary: every word, and each of its prefixes at 0
        pfdict: dict[str, int] = {}
        for word, f in self._vocabulary.items():
            pfdict[word] = f
            for i in range(1, len(word)):
                pfdict.setdefault(word[:i], 0)
        tok.FREQ, tok.total, tok.initialized = pfdict, self._total, True
        return tok


FULL = Segmenter()


def tokenize(text: str) -> list[str]:
    """Tokens over the full dictionary (see ``Segmenter.tokenize``)."""
    return FULL.tokenize(text)


def content_terms(text: str) -> list[str]:
    """Question terms over the full dictionary (see ``Segmenter.content_terms``)."""
    return FULL.content_terms(text)
