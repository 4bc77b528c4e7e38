"""How an answer looks: one presenter for the terminal and for Telegram HTML.

Both front ends render the parts of an ``Answer`` (bot/answers.py) through the
functions here and never read answer text back. What is shown is decided once:

* the short answer (bold in Telegram, highlighted on a terminal), the quotes with their
  ``[n]`` markers, prose, a notice when the LLM was not used;
* 「（指：…）」 / "(taken as about: …)" when a follow-up was answered with an earlier
  turn's subject;
* the cited passages, or, when nothing is cited (a refusal), the closest ones under a
  heading that says they do not answer it; ``passages_to_show`` is that rule, and the
  CLI's ``/sources`` and Telegram's Sources button both show its passages in full.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

from bot import tokens
from bot.answers import Answer, Citation, PartKind, Quote, parts
from bot.sentences import split_sentences
from bot.wording import printable

# How many uncited passages a refusal lists: the closest three tell a user whether the
# documents are near the question at all; more is noise (a UI choice, not measured).
RELATED_SHOWN = 3
# Characters of a passage shown beside its source in the compact list: about one line
# of a terminal or a phone after the "[n] source:start-end" prefix.
SNIPPET_CHARS = 60
SOURCES_TITLE = "Sources:"
RELATED_TITLE = "Closest passages (they do not answer it):"
NO_PASSAGES = "The last answer cited no passages."
# Telegram's limit, in UTF-16 code units (telegram.constants.MessageLimit.MAX_TEXT_LENGTH;
# not imported so the terminal path does not load PTB).
TELEGRAM_LIMIT = 4096


@dataclass(frozen=True)
class Shown:
    """The passages an answer points to, with the heading they go under."""

    title: str
    passages: list[Citation]


def passages_to_show(citations: Sequence[Citation], related: Sequence[Citation]) -> Shown:
    """The cited passages; or, with none cited, the closest few (marked as not answering)."""
    if citations:
        return Shown(SOURCES_TITLE, list(citations))
    return Shown(RELATED_TITLE, list(related[:RELATED_SHOWN]))


def followup_line(answer: Answer) -> str | None:
    """The subject a follow-up was taken to be about, so the user sees why it was
    answered so: 「（指：天华民乐团）」, "(taken as about: Huocheng)"."""
    if not answer.assumed_subject:
        return None
    if tokens.is_mostly_cjk(answer.question):
        return f"（指：{answer.assumed_subject}）"
    return f"(taken as about: {answer.assumed_subject})"


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """The passage on one line, cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def cited_snippet(c: Citation, quotes: Sequence[Quote] = ()) -> str:
    """What a passage shows in the compact list: from the sentence the answer quotes
    from it (so the line shows why it is cited), else from the passage's start."""
    for q in quotes:
        if c.n in q.cites and q.start is not None and c.start <= q.start < c.end:
            local = q.start - c.start
            return ("…" if local else "") + snippet(c.text[local:],
                                                    SNIPPET_CHARS - (1 if local else 0))
    return snippet(c.text)


def where(c: Citation) -> str:
    """"docs/guide.md:42 (chars 599-734)": the file as a person knows it, the line to open
    it at (for text formats), and the exact characters; never a server's absolute path."""
    return f"{printable(c.label)} (chars {c.start}-{c.end})"


def cite_line(c: Citation, quotes: Sequence[Quote] = ()) -> str:
    return f"[{c.n}] {where(c)}  {cited_snippet(c, quotes)}"


def source_heading(c: Citation) -> str:
    return f"[{c.n}] {where(c)}"


# ----- terminal --------------------------------------------------------------------------
# A line is a list of (text, rich style or None) segments; plain output drops the styles.
Segment = tuple[str, str | None]
Line = list[Segment]


def terminal_lines(answer: Answer, *, with_answer: bool = True) -> list[Line]:
    """The answer as styled lines: parts, follow-up note, compact passage list."""
    lines: list[Line] = []
    if with_answer:
        for part in parts(answer):
            if part.kind == PartKind.NOTE:
                lines.append([(part.text, "yellow")])
            elif part.kind == PartKind.HEADLINE:
                lines.append([(part.text, "bold green"), (f" {part.cites}", "cyan")])
            elif part.kind == PartKind.QUOTE:
                lines.append([(part.text, None), (f" {part.cites}", "cyan")])
            else:
                lines.append([(part.text, "yellow" if answer.refused else None)])
    follow = followup_line(answer)
    if follow:
        lines.append([(follow, "dim")])
    shown = passages_to_show(answer.citations, answer.related)
    if shown.passages:
        lines.append([(shown.title, "bold")])
        lines += [[("  ", None), (f"[{c.n}] ", "cyan"), (where(c), "dim"),
                   (f"  {cited_snippet(c, answer.quotes)}", None)] for c in shown.passages]
    return lines


def sources_lines(citations: Sequence[Citation], related: Sequence[Citation]) -> list[Line]:
    """Every passage ``passages_to_show`` picks, in full (the CLI's /sources)."""
    shown = passages_to_show(citations, related)
    if not shown.passages:
        return [[(NO_PASSAGES, None)]]
    lines: list[Line] = [] if citations else [[(shown.title, "bold")], []]
    for i, c in enumerate(shown.passages):
        if i:
            lines.append([])
        lines.append([(source_heading(c), "bold cyan")])
        lines.append([(c.text, None)])
    return lines


def plain(lines: Sequence[Line]) -> str:
    return "\n".join("".join(text for text, _ in line) for line in lines)


# ----- Telegram HTML ------------------------------------------------------------------------
def esc(text: str) -> str:
    return html.escape(text, quote=False)


def tg_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (an emoji counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def block(text: str, tag: str | None = None, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Escaped HTML for ``text``, wrapped in ``tag``, cut into pieces that each fit in
    one message; cuts fall between sentences (or characters, for a giant sentence),
    so no piece ever splits a tag or an entity."""
    wrap = (lambda s: f"<{tag}>{s}</{tag}>") if tag else (lambda s: s)
    budget = limit - tg_len(wrap(""))
    whole = wrap(esc(text))
    if tg_len(whole) <= limit:
        return [whole]
    pieces: list[str] = []
    current = ""
    units = []
    pos = 0
    for span in split_sentences(text):  # whitespace between sentences stays with the one before
        units.append(text[pos:span.end])
        pos = span.end
    units.append(text[pos:])
    for unit in units:
        for part in _hard_cut(unit, budget):
            if current and tg_len(esc(current + part)) > budget:
                pieces.append(wrap(esc(current)))
                current = ""
            current += part
    if current.strip():
        pieces.append(wrap(esc(current)))
    return pieces


def _hard_cut(text: str, budget: int) -> list[str]:
    """Cut text whose escaped form exceeds the budget into pieces that fit."""
    out, current = [], ""
    for ch in text:
        if tg_len(esc(current + ch)) > budget:
            out.append(current)
            current = ""
        current += ch
    if current:
        out.append(current)
    return out


def pack(blocks: Sequence[str], limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Join self-contained HTML blocks with newlines into as few messages as fit."""
    messages: list[str] = []
    current = ""
    for b in blocks:
        candidate = f"{current}\n{b}" if current else b
        if tg_len(candidate) <= limit:
            current = candidate
        else:
            if current:
                messages.append(current)
            current = b
    if current:
        messages.append(current)
    return messages


def telegram_answer(answer: Answer) -> list[str]:
    """The answer with its [n] markers and a compact passage list, as HTML messages."""
    blocks: list[str] = []
    for part in parts(answer):
        tag = {PartKind.NOTE: "i", PartKind.HEADLINE: "b"}.get(part.kind)
        blocks += block(part.line, tag)
    follow = followup_line(answer)
    if follow:
        blocks += block(follow, "i")
    shown = passages_to_show(answer.citations, answer.related)
    if shown.passages:
        blocks.append("")
        blocks += block(shown.title, "i")
        blocks += [piece for c in shown.passages
                   for piece in block(cite_line(c, answer.quotes))]
    return pack(blocks)


def telegram_sources(citations: Sequence[Citation], related: Sequence[Citation]) -> list[str]:
    """Every passage ``passages_to_show`` picks, in full, as HTML messages."""
    shown = passages_to_show(citations, related)
    if not shown.passages:
        return [NO_PASSAGES]
    blocks: list[str] = [] if citations else [*block(shown.title, "i"), ""]
    for c in shown.passages:
        blocks += block(source_heading(c), "b")
        blocks += block(c.text)
        blocks.append("")
    return pack(blocks[:-1])


def has_passages(citations: Sequence[Citation], related: Sequence[Citation]) -> bool:
    """Whether a Sources button / ``/sources`` has anything to show."""
    return bool(passages_to_show(citations, related).passages)
