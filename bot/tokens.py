"""Text normalisation and word segmentation shared by BM25, the answerer and scoring.

jieba is imported on first use and keeps its dictionary cache under the state
directory (not /tmp), so a cold start after the first one loads it in a fraction
of a second.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache
from pathlib import Path

_jieba_lock = threading.Lock()
_jieba = None
_cache_dir: Path | None = None

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
    """NFKC (full width to half width), lower case, whitespace collapsed."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip().lower()


def is_mostly_cjk(text: str) -> bool:
    cjk = len(_CJK.findall(text))
    latin = sum(len(w) for w in _LATIN_WORD.findall(text))
    return cjk > 0 and cjk >= latin / 3


def tokenize(text: str) -> list[str]:
    """Search-mode jieba tokens of normalised text, without punctuation or stopwords."""
    return list(_tokenize_cached(normalize(text)))


@lru_cache(maxsize=4096)
def _tokenize_cached(text: str) -> tuple[str, ...]:
    return tuple(
        tok for tok in _segmenter().lcut_for_search(text)
        if tok.strip() and not _PUNCT_OR_SPACE.match(tok) and tok not in STOPWORDS
    )


def content_terms(text: str) -> list[str]:
    """Distinct tokens of a question in order, longest-first within overlaps removed."""
    seen: dict[str, None] = {}
    for tok in tokenize(text):
        seen.setdefault(tok, None)
    terms = list(seen)
    # search mode yields both 综合病房 and 病房; keep sub-terms only when alone
    return [t for t in terms if not any(t != o and t in o for o in terms)]


def _segmenter():  # -> jieba.Tokenizer
    global _jieba
    if _jieba is None:
        with _jieba_lock:
            if _jieba is None:
                import logging

                import jieba

                jieba.setLogLevel(logging.WARNING)
                tok = jieba.Tokenizer()
                if _cache_dir is not None:
                    _cache_dir.mkdir(parents=True, exist_ok=True)
                    tok.tmp_dir = str(_cache_dir)
                tok.initialize()
                _jieba = tok
    return _jieba
