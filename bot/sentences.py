"""Sentences: where they end in Chinese and English text, offsets exact.

Sentences end at 。！？；(and ``! ? ;``, and ``.`` before a space), at any closing
quote or bracket right after those, and at newlines; not inside brackets or title
marks (「《卡拉OK.LIVE！‧台北‧我》是…」 is one sentence). In Latin-script text two more
rules apply (``_english_period_continues``, ``_soft_newline``): a period after an
initial or a known abbreviation, or before a lower-case word, ends nothing ("M. Theo
Kearney", "e.g. the", "approx. 5"; decimals and versions have no space after the dot
and never did), and a line break inside a hard-wrapped paragraph (a line that stops
mid-sentence, followed by one that goes on) is a space, not a sentence end. A blank
line, a list item, a heading, a table row, a code fence or a reST underline still ends
the paragraph. The text itself is never changed, so offsets stay exact; quotes show
such a line break as a space (``unwrap``). bot/chunking.py merges sentences into chunks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SENTENCE_END = re.compile(r"[。！？；!?;…]+[”’」』）)\]\"']*|\.(?=\s)|\n")


# "&amp;" / "&#38;" / "&#x26;" as plain text (a page saved from the web, an HTML
# example in a README): that ";" closes a character reference, it ends no sentence.
_ENTITY_BEFORE = re.compile(r"&(?:[A-Za-z][A-Za-z0-9]{1,31}|#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6})$")

# A terminator inside brackets or title marks does not end the sentence, unless the
# bracket has run this long (an unclosed bracket must not swallow a whole document).
_OPENERS, _CLOSERS = "(（《〈【[", ")）》〉】]"

_MAX_BRACKETED = 160

# Abbreviations after which ". " rarely ends an English sentence (titles, Latin, units,
# months, corporate suffixes). Lower case, without the dot. Not here: words that also
# end sentences as often as not ("etc", "et al", "no"), which the rule about the next
# word's case decides.
_ABBREVIATIONS = frozenset((
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "ft", "gen", "gov", "sen",
    "rep", "rev", "col", "lt", "capt", "sgt", "maj", "cmdr", "adm", "vs", "cf", "eg",
    "ie", "approx", "ca", "dept", "fig", "figs", "vol", "vols", "pp", "inc", "ltd", "co",
    "corp", "bros", "assn", "univ", "jan", "feb", "mar", "apr", "jun", "jul", "aug",
    "sep", "sept", "oct", "nov", "dec",
))

_TITLES = frozenset(("mr", "mrs", "ms", "dr", "prof", "st", "mt", "gen", "gov", "sen", "rep",
                     "rev", "col", "lt", "capt", "sgt", "maj", "cmdr", "adm"))

_WORD_BEFORE = re.compile(r"(?:^|[\s(\[\"'“‘])((?:[A-Za-z]\.)*[A-Za-z]+)$")

_LATIN_LINE_END = re.compile(r"[A-Za-z0-9,;:)\]\-'\"’”*_`]$")

_LATIN_LINE_START = re.compile(r" {0,3}[A-Za-z0-9(\"'‘“*_`]")

# A wrapped line runs close to the wrap width (60-80 characters in the wild); a shorter
# one followed by a capital is a title or a line of its own (PDF headings carry no '#').
_WRAP_MIN_LINE = 40

# lines that start a block of their own: they are never the tail of a wrapped line
_BLOCK_START = re.compile(
    r" {0,3}(?:[-*+•]\s|\d{1,3}[.)]\s|#|\||>|```|~~~|\.\. |:\w+:)"
    r"|([=\-~^\"'`#*+_])\1{2,}\s*$")

# Chinese hard wraps (``_cjk_wrap``). A wrapped line ends in an ideograph or a comma
# and the next starts with an ideograph (or closing punctuation); the paragraph's lines
# must show a wrap width of at least _CJK_WRAP_MIN characters, met by two lines within
# _CJK_WRAP_SLACK of it. Hand-set from the forms seen in wrapped Chinese text files and
# PDF text layers (widths 20-40, the last line of a paragraph shorter).
_CJK_WRAP_END = re.compile(r"[\u3400-\u9fff\uf900-\ufaff，、,]")

_CJK_WRAP_START = re.compile(r"[\u3400-\u9fff\uf900-\ufaff，、。！？；：”’」』）》]")

_CJK_TEXT = "\u3000-\u303f\u3400-\u9fff\uf900-\ufaff\uff00-\uffef"  # with full-width marks

_CJK_LINE_BREAK = re.compile(rf"(?<=[{_CJK_TEXT}，,])[ \t]*\n[ \t]*(?=[{_CJK_TEXT}])")

_CJK_WRAP_MIN = 16

_CJK_WRAP_SLACK = 2

_CJK_WRAP_LOOK = 12

# Blocks that are one unit however many lines they have: a fenced code block (to its
# closing fence, or the end of the text) and a table (two or more rows of | ... | or
# reST grid lines). They are never split into sentences, and a chunk holds one whole
# unless it alone is over the limit (then it is cut at line ends).
BLOCK = re.compile(
    r"^[ \t]{0,3}(?P<fence>`{3,}|~{3,})[^\n]*\n.*?(?:^[ \t]{0,3}(?P=fence)[ \t]*$|\Z)"
    r"|(?:^[ \t]{0,3}(?:\|[^\n]*\||\+[-=+:]+\+)[ \t]*(?:\n|\Z)){2,}",
    re.M | re.S)


@dataclass(frozen=True)
class Span:
    start: int
    end: int


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    """Sentence spans of ``text[start:end]``, whitespace trimmed, empty ones dropped.
    A fenced code block or a table is one span, whatever it contains."""
    end = len(text) if end is None else end
    spans: list[Span] = []
    pos = start
    for block in BLOCK.finditer(text, start, end):
        _split_prose(text, pos, block.start(), spans)
        append_trimmed(spans, text, block.start(), block.end())
        pos = block.end()
    _split_prose(text, pos, end, spans)
    return spans


def _split_prose(text: str, start: int, end: int, spans: list[Span]) -> None:
    pos = start
    for match in _SENTENCE_END.finditer(text, start, end):
        mark = match.group()
        if mark == ";" and _ENTITY_BEFORE.search(text, max(pos, match.start() - 40),
                                                 match.start()):
            continue
        if mark == "\n":
            if _soft_newline(text, match.start(), end) or _cjk_wrap(text, match.start(), end):
                continue
        elif mark == "." and _english_period_continues(text, match.start(), end):
            continue
        elif match.start() - pos < _MAX_BRACKETED and _open_brackets(text, pos,
                                                                    match.start()):
            continue  # 「萱侬律(又名：东芭乐园；泰文：…)」 is one sentence
        append_trimmed(spans, text, pos, match.end())
        pos = match.end()
    append_trimmed(spans, text, pos, end)


def _english_period_continues(text: str, dot: int, end: int) -> bool:
    """Whether the ". " at ``dot`` goes on with the same sentence: after an initial
    (M. Theo Kearney) or a known abbreviation (Dr., e.g.), or before a lower-case word
    or a digit (approx. 5, ... and)."""
    after = dot + 1
    while after < end and text[after] in " \t":
        after += 1
    if after < end and text[after] == "\n":
        return False  # a period at the end of a line ends its sentence
    nxt = text[after] if after < end else ""
    if nxt.islower() or nxt.isdigit():
        return True
    word = _WORD_BEFORE.search(text, max(0, dot - 24), dot)
    if word is None:
        return False
    token = word.group(1)
    if len(token) == 1 and token.isupper():
        return True  # an initial
    key = token.replace(".", "").lower()
    if key in _TITLES and not token[0].isupper():
        return False  # "2.69 ms." is milliseconds, "Ms. Smith" a title
    return key in _ABBREVIATIONS


def _soft_newline(text: str, at: int, end: int) -> bool:
    """Whether the line break at ``at`` is a hard wrap inside a Latin-script paragraph:
    the line before stops mid-sentence (a letter, digit or comma, no terminal mark) and
    the next line goes on with text, not with a block of its own."""
    line_start = text.rfind("\n", 0, at) + 1
    line = text[line_start:at]
    if not line.strip() or not _LATIN_LINE_END.search(line.rstrip()) \
            or _BLOCK_START.match(line) or line.startswith("    "):
        return False
    next_end = text.find("\n", at + 1, end)
    next_end = end if next_end < 0 else next_end
    following = text[at + 1:next_end]
    if not following.strip() or not _LATIN_LINE_START.match(following) \
            or _BLOCK_START.match(following):
        return False
    if len(line.strip()) < _WRAP_MIN_LINE and not following.lstrip()[:1].islower():
        return False  # a short line before a capital is a heading or a line of its own
    # a line underlined by the one after it is a reST/setext heading
    after_end = text.find("\n", next_end + 1, end)
    after = text[next_end + 1:end if after_end < 0 else after_end]
    underline = _BLOCK_START.match(after) if after else None
    return not (underline and underline.group(1))


def _cjk_wrap(text: str, at: int, end: int) -> bool:
    """Whether the line break at ``at`` is a hard wrap inside Chinese text: the line
    before ends mid-sentence in a CJK character or comma, the next line goes on in CJK,
    and the line is as long as the paragraph's wrap width. The width must show: at least
    three lines in the paragraph, two of them within ``_CJK_WRAP_SLACK`` of its longest,
    so a title over a source line, or a list of short lines, stays apart."""
    before = text[at - 1] if at > 0 else ""
    after = text[at + 1] if at + 1 < end else ""
    if not (_CJK_WRAP_END.match(before) and _CJK_WRAP_START.match(after)):
        return False
    lengths = _paragraph_line_lengths(text, at, end)
    line_start = text.rfind("\n", 0, at) + 1
    width = max(lengths, default=0)
    return (len(lengths) >= 3 and width >= _CJK_WRAP_MIN
            and at - line_start >= width - _CJK_WRAP_SLACK
            and sum(n >= width - _CJK_WRAP_SLACK for n in lengths) >= 2)


def _paragraph_line_lengths(text: str, at: int, end: int) -> list[int]:
    """Lengths of the lines of the paragraph around ``at`` (up to ``_CJK_WRAP_LOOK``
    lines either side: enough to see the width, and bounded however long the text)."""
    lengths: list[int] = []
    pos = at
    for _ in range(_CJK_WRAP_LOOK):  # backwards, from the line ending at ``at``
        start = text.rfind("\n", 0, pos) + 1
        line = text[start:pos]
        if not line.strip():
            break
        lengths.append(len(line.strip()))
        if start == 0:
            break
        pos = start - 1
    pos = at + 1
    for _ in range(_CJK_WRAP_LOOK):
        stop = text.find("\n", pos, end)
        stop = end if stop < 0 else stop
        line = text[pos:stop]
        if not line.strip():
            break
        lengths.append(len(line.strip()))
        if stop >= end:
            break
        pos = stop + 1
    return lengths


def unwrap(text: str) -> str:
    """A quote as a reader sees it: a line break inside a sentence shown as a space,
    or as nothing between two CJK characters (Chinese puts no space between words)."""
    text = _CJK_LINE_BREAK.sub("", text)
    return re.sub(r"[ \t]*\n[ \t]*", " ", text)


def _open_brackets(text: str, start: int, end: int) -> bool:
    """Whether a bracket or title mark opened in ``text[start:end]`` is still open."""
    depth = 0
    for ch in text[start:end]:
        if ch in _OPENERS:
            depth += 1
        elif ch in _CLOSERS and depth:
            depth -= 1
    return depth > 0


def append_trimmed(spans: list[Span], text: str, start: int, end: int) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        spans.append(Span(start, end))
