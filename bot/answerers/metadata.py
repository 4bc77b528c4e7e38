"""Answers about the document itself: "who wrote this article?", 「这篇报道的编辑是谁?」.

Every answerer asks this first. The loader reads a document's author, editor, title,
date and publisher off its header and footer (bot/loading.py); a question that names
the document (``_ABOUT_DOC``) and one of those fields (``_META_FIELDS``) is answered
with the field's value, quoting the line of the text that states it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from langchain_core.documents import Document

from bot.answerers.contract import Corpus, Query
from bot.answers import Answer, Citation, Evidence, Mode, Quote, citation_of
from bot.sentences import split_sentences

# Questions about the document itself ("who wrote this article?") are answered from
# the metadata the loader read off its header and footer, citing the chunk that says so.
_ABOUT_DOC = re.compile(r"这篇|本篇|该篇|本文|这则|这份|这条|文章|报道|新闻稿|稿件|原文"
                        r"|this (article|story|report|piece)|the (article|story|report)|newspaper",
                        re.I)
_META_FIELDS: list[tuple[str, re.Pattern[str]]] = [
    ("editor", re.compile(r"编辑|责编|\beditor", re.I)),
    ("author", re.compile(r"作者|记者|谁写|撰写|撰稿|\bauthor|\bwrote\b|written by|reporter",
                          re.I)),
    ("title", re.compile(r"标题|题目|\btitle|headline", re.I)),
    ("date", re.compile(r"哪天|哪一天|日期|什么时候|何时|哪年|时间|\bwhen\b|\bdate\b", re.I)),
    ("publisher", re.compile(r"来源|媒体|报纸|哪家|出处|刊登|刊发|\bsource|newspaper|outlet"
                             r"|published", re.I)),
]


def metadata_answer(corpus: Corpus, query: Query, passages: Sequence[Document],
                    pool: Sequence[Citation], mode: Mode = Mode.EXTRACTIVE) -> Answer | None:
    """The answer to a question about the document itself (its author, editor, title,
    date, publisher) from the metadata the loader read off its header and footer,
    citing the chunk that says so; None when the question is not such a question or
    the document does not say. ``pool`` (the passages as citations) becomes related."""
    if not passages or not _ABOUT_DOC.search(query.question):
        return None
    source = str(passages[0].metadata.get("source", ""))
    for name, pattern in _META_FIELDS:
        if not pattern.search(query.question):
            continue
        value = passages[0].metadata.get(name)
        if not value:
            return None
        # dates are normalised in metadata; cite the text as written
        needle = value if name != "date" else value.split("-")[0]
        chunk = corpus.find_chunk(source, needle)
        if chunk is None:
            return None
        c = citation_of(1, chunk)
        line = next((chunk.page_content[s.start:s.end]
                     for s in split_sentences(chunk.page_content)
                     if needle in chunk.page_content[s.start:s.end]), chunk.page_content)
        related = [dataclasses.replace(r, n=i) for i, r in enumerate(
            (p for p in pool if p.chunk_id != c.chunk_id), start=2)]
        return Answer(
            question=query.question, short_answer=value, short_cite=1,
            quotes=[Quote(line, (1,))], refused=False, citations=[c], related=related,
            standalone_query=query.standalone, support=1.0, mode=mode,
            evidence=Evidence(source=source, text=line, meta_field=name),
        )
    return None
