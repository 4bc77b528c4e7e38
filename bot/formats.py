"""File formats to text: HTML (the article, its title, date and site chrome apart),
Word (.docx: headings and tables in Markdown) and PDF (the text layer). bot/loading.py
decides which applies and reads the document's metadata off the text.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

from bot.errors import DocumentError


def docx_text(raw: bytes, path: Path) -> str:
    """A Word document's body in order: paragraphs (blank lines between), headings as
    Markdown headings (the first is the title), tables as pipe tables with their first
    row as the header, which bot/chunking.py reads row by row as facts. Offsets in
    citations index this extracted text, as for PDF. (python-docx, imported on use.)"""
    import io

    try:
        import docx
        from docx.table import Table
        from docx.text.paragraph import Paragraph
    except ImportError as exc:
        raise DocumentError(f"{path}: reading .docx needs python-docx (pip install "
                            "python-docx).") from exc
    try:
        document = docx.Document(io.BytesIO(raw))
    except Exception as exc:  # zip, XML and package errors of a damaged file alike
        raise DocumentError(f"{path} is not a readable .docx file ({exc}). Re-save it from "
                            "Word, or convert it to PDF or text.") from exc
    blocks: list[str] = []
    for element in document.element.body.iterchildren():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag == "p":
            paragraph = Paragraph(element, document)
            text = " ".join(paragraph.text.split())
            if not text:
                continue
            style = (paragraph.style.name if paragraph.style is not None else "") or ""
            level = (1 if style == "Title" else int(style.split()[-1])
                     if style.startswith("Heading") and style.split()[-1].isdigit() else 0)
            blocks.append(f"{'#' * level} {text}" if level else text)
        elif tag == "tbl":
            rows = []
            for row in Table(element, document).rows:
                cells = [" ".join(c.text.split()).replace("|", "/") for c in row.cells]
                rows.append("| " + " | ".join(cells) + " |")
            if rows:
                divider = "|" + "---|" * rows[0].count(" | ") + "---|"
                blocks.append("\n".join([rows[0], divider, *rows[1:]]))
    return "\n\n".join(blocks) + "\n"


def pdf_text(raw: bytes, path: Path) -> str:
    """The text layer of a PDF, page by page (pypdf: pure Python, imported on use)."""
    import io

    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(raw))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PyPdfError, ValueError, KeyError, TypeError) as exc:
        raise DocumentError(f"{path} is not a readable PDF ({exc}). Re-export it or convert "
                            "it to text.") from exc
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        raise DocumentError(f"{path} has no text layer (a scan?). Run OCR on it first or "
                            "convert it to text.")
    return text + "\n"


class TextExtractor(HTMLParser):
    """HTML to text: drops markup, scripts, styles and navigation chrome (nav, aside,
    forms, the page's own header and footer bars), keeps block breaks as newlines, and
    writes tables as pipe tables (a row a line, cells apart, a divider under a header
    row) so that bot/chunking.py reads each row as a fact. The publication date comes
    from the page's metadata (``article:published_time``, ``<meta name=date>``,
    ``<time datetime>``)."""

    _BLOCK: ClassVar[set[str]] = {
        "p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article",
        "header", "footer", "ul", "ol", "table", "blockquote", "pre", "title", "dl", "dt",
        "dd", "figcaption", "main"}
    _SKIP: ClassVar[set[str]] = {"script", "style", "noscript", "template", "nav", "aside",
                                 "form", "button", "select", "svg", "iframe"}
    _DATE_META: ClassVar[set[str]] = {"article:published_time", "date", "dc.date",
                                      "pubdate", "publishdate", "dcterms.date"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self.h1 = ""
        self.date = ""
        self._skip = 0
        self._in_title = False
        self._in_h1 = False
        self._row: list[str] | None = None  # cells of the table row being read
        self._cell: list[str] | None = None
        self._header_row = False
        self._depth = 0  # open elements, to tell the page's own header/footer bars

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "meta" and not self.date:
            name = (found.get("property") or found.get("name") or "").lower()
            if name in self._DATE_META and found.get("content"):
                self.date = str(found["content"])[:10]
            return
        if tag == "time" and not self.date and found.get("datetime"):
            self.date = str(found["datetime"])[:10]
        if tag in self._SKIP or (tag in ("header", "footer") and self._depth <= 2):
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif tag == "tr":
            self._row, self._header_row = [], True
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
            self._header_row = self._header_row and tag == "th"
        elif tag in self._BLOCK:
            if self._cell is not None:  # a paragraph inside a cell stays in the cell
                self._cell.append(" ")
            else:
                self.parts.append("\n")
            self._in_h1 = tag == "h1" and not self.h1
        if tag not in ("br", "meta", "img", "hr", "input", "link"):
            self._depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag not in ("br", "meta", "img", "hr", "input", "link"):
            self._depth = max(0, self._depth - 1)
        if tag in self._SKIP or (tag in ("header", "footer") and self._skip
                                 and self._depth <= 2):
            self._skip = max(0, self._skip - 1)
        elif tag == "title":
            self._in_title = False
        elif tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()).replace("|", "/"))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if any(self._row):
                self.parts.append("\n| " + " | ".join(self._row) + " |\n")
                if self._header_row:
                    self.parts.append("|" + "---|" * len(self._row) + "\n")
            self._row = None
        elif tag in self._BLOCK:
            if self._cell is None:
                self.parts.append("\n")
            if tag == "h1":
                self._in_h1 = False

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._in_title:
            self.title += data.strip()
            return
        if self._in_h1:
            self.h1 += data.strip()
        if self._cell is not None:
            self._cell.append(data)
            return
        self.parts.append(re.sub(r"[ \t\r\n]+", " ", data))


def html_to_text(html: str) -> tuple[str, str, str]:
    """(text, title, publication date or "") of an HTML page."""
    parser = TextExtractor()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts)
    text = "\n".join(line.strip() for line in text.split("\n"))
    # table rows stay on consecutive lines (one table); other blocks get a blank line
    text = re.sub(r"\n{3,}", "\n\n", text)
    text = re.sub(r"(?<=\|)\n\n(?=\|)", "\n", text).strip()
    if parser.title and not text.startswith(parser.title):
        text = parser.title + "\n" + text  # the title is searchable text too
    return text + "\n", parser.title or parser.h1, parser.date
