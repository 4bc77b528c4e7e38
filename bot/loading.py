"""Documents in: ``.txt``, ``.md``, ``.rst``, ``.html``, ``.pdf`` and ``.docx`` files become
``Document`` objects.

A document keeps its text exactly as the chunker will index it (offsets in citations
point into this text), plus what we could learn about it: title, source, author,
date, and the spans that are web-page chrome (site statement, contact footer,
"latest news" lists), which stay searchable but are marked so they never outrank
the article itself.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from bot.errors import DocumentError
from bot.formats import docx_text, html_to_text, pdf_text
from bot.wording import printable

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".rst", ".html", ".htm", ".pdf", ".docx")
# .docx text is written with Markdown headings and pipe tables (``docx_text``)
_MARKUP = {".md": "markdown", ".markdown": "markdown", ".rst": "rest", ".docx": "markdown"}


@dataclass(frozen=True)
class Document:
    path: Path  # resolved location on disk
    source: str  # how citations name it (relative to the project root when inside it)
    text: str
    sha256: str  # of the raw bytes: tells re-ingest whether anything changed
    meta: dict[str, str] = field(default_factory=dict)
    header: tuple[int, int] | None = None  # span of the title/source/date lines
    boilerplate: tuple[tuple[int, int], ...] = ()  # spans of site chrome


class Found(NamedTuple):
    files: list[Path]  # supported files to load, resolved, sorted
    ignored: list[Path]  # files of unsupported types
    refused: list[str]  # "name: why" for links out of an ingested folder, not read
    # how a person knows each file: relative to the folder it was ingested from, that
    # folder's name first ("docs/guide.md"), or its own name when ingested as a file
    shown: dict[Path, str]


def discover(paths: Sequence[Path], *, follow_links: bool = False) -> Found:
    """Expand files and folders into the files to load, sorted.

    A link inside a folder whose target lies outside that folder is refused (named in
    ``refused``) unless ``follow_links``: a link to /etc/passwd dropped into a documents
    folder must not make its lines answers. The type is that of the target, not of the
    link's name. A file named explicitly is read wherever it points: its user chose it.
    (A name that is not valid UTF-8 is listed; ``load`` refuses it with a message.)"""
    found: set[Path] = set()
    ignored: set[Path] = set()
    refused: list[str] = []
    shown: dict[Path, str] = {}
    for path in paths:
        if not path.exists():
            raise DocumentError(f"{printable(str(path))} does not exist. Pass a file or "
                                "folder to ingest.")
        folder = None if path.is_file() else path.resolve()
        candidates = [path] if folder is None else [p for p in path.rglob("*") if p.is_file()]
        for p in candidates:
            if any(part.startswith(".") for part in p.relative_to(path.parent).parts):
                continue  # hidden files and folders (.git, .DS_Store, editor swap files)
            target = p.resolve()
            if folder is not None and not follow_links and not target.is_relative_to(folder):
                refused.append(f"{printable(str(p))}: a link to {printable(str(target))}, "
                               f"outside {printable(str(folder))}; not read (ingest with "
                               "--follow-links to read it)")
                continue
            (found if target.suffix.lower() in SUPPORTED_SUFFIXES else ignored).add(target)
            shown.setdefault(target, p.name if folder is None else
                             (Path(folder.name) / p.relative_to(path)).as_posix())
    return Found(sorted(found), sorted(ignored), refused, shown)


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:  # os.fsdecode kept undecodable bytes as surrogates
        return False


# Formats whose extracted text keeps the file's lines, so a line number opens the file
# at the passage (not so for HTML and PDF, whose text is extracted).
LINE_FORMATS = (".txt", ".md", ".markdown", ".rst")


def load(path: Path, *, root: Path | None, shown: str | None = None) -> Document:
    """Read one file as a ``Document``; raises ``DocumentError`` if it is not text.
    ``shown`` is how citations name it to a person (default: the file's name)."""
    if not _utf8(str(path)):  # discover() skips these; a caller naming one gets the same
        raise DocumentError(f"{printable(str(path))}: the file name is not valid UTF-8 (a "
                            "name from another system's encoding); rename the file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DocumentError(f"Cannot read {path}: {exc.strerror}. Check the file's "
                            "permissions.") from exc
    suffix = path.suffix.lower()
    text = (pdf_text(raw, path) if suffix == ".pdf" else docx_text(raw, path)
            if suffix == ".docx" else _decode(raw, path))
    html_title = html_date = ""
    if path.suffix.lower() in (".html", ".htm"):
        text, html_title, html_date = html_to_text(text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # before anything indexes it: the stored text (which citation offsets index) never
    # holds a sequence a terminal would act on
    text = strip_controls(text)
    if not text.strip():
        raise DocumentError(f"{path} holds no text. Remove it or add content.")
    header, meta = _header(text, markup=_MARKUP.get(path.suffix.lower()))
    if html_title and "title" not in meta:
        meta["title"] = html_title
    if html_date and "date" not in meta and _DATE.search(html_date):
        meta["date"] = html_date
    editor = _EDITOR.search(text)
    if editor:
        meta["editor"] = editor.group(1)
    meta["shown"] = shown or path.name
    meta["path"] = path.resolve().as_posix()
    if path.suffix.lower() in LINE_FORMATS:
        meta["lines"] = "1"
    return Document(
        path=path,
        source=display_name(path, root),
        text=text,
        sha256=hashlib.sha256(raw).hexdigest(),
        meta=meta,
        header=header,
        boilerplate=tuple(_boilerplate_spans(text)),
    )


def iter_documents(files: Sequence[Path], *, root: Path | None,
                   shown: dict[Path, str] | None = None
                   ) -> Iterator[Document | DocumentError]:
    """Load files one by one (streaming); a bad file yields its error instead of stopping."""
    for path in files:
        try:
            yield load(path, root=root, shown=(shown or {}).get(path))
        except DocumentError as exc:
            yield exc


def display_name(path: Path, root: Path | None) -> str:
    """How citations name a file: relative to ``root`` when under it, else absolute."""
    if root is None:
        return path.resolve().as_posix()
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


# Terminal escape sequences (CSI: colours, clear screen; OSC: window titles, hyperlinks;
# two-character escapes) and the other control characters but tab and newline.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI ... final byte
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC ... BEL or ST
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS, SOS, PM, APC strings
    r"|\x1b[@-Z\\-_]?"  # two-character escapes, or a lone ESC
    r"|\x9b[0-?]*[ -/]*[@-~]"  # 8-bit CSI
    r"|[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_PAGE_BREAKS = str.maketrans({"\x0b": "\n", "\x0c": "\n"})


def strip_controls(text: str) -> str:
    """``text`` without escape sequences and control characters (vertical tab and form
    feed, page breaks in PDFs and old text files, become line breaks)."""
    return _ESCAPES.sub("", text.translate(_PAGE_BREAKS))


_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def _decode(raw: bytes, path: Path) -> str:
    for bom, encoding in _BOMS:  # UTF-16/32 files (Windows Notepad) have NUL bytes
        if raw.startswith(bom):
            try:
                return raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise DocumentError(f"{path} starts like {encoding.upper()} text but is "
                                    "not valid; re-save it as UTF-8.") from exc
    if b"\x00" in raw[:8192]:
        raise DocumentError(f"{path} looks binary, not text. Only .txt, .md, .rst, .html, "
                            ".pdf and .docx documents are supported; remove or convert it.")
    try:
        return raw.decode("utf-8-sig")  # valid UTF-8 is UTF-8, control characters or not
    except UnicodeDecodeError:
        pass
    try:
        text = raw.decode("gb18030")
    except UnicodeDecodeError:
        pass
    else:
        # gb18030 decodes almost any byte string; reject results full of control chars.
        controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\n\r\t\f")
        if controls <= max(2, len(text) // 200):
            return text
    raise DocumentError(f"{path} is not UTF-8 or GB18030 text. Re-save it as UTF-8.")


_DATE = re.compile(r"(\d{4})\s*[-年/.]\s*(\d{1,2})\s*[-月/.]\s*(\d{1,2})")
_EDITOR = re.compile(r"(?:责任编辑|责编|编辑)\s*[:：]\s*([\u4e00-\u9fff]{2,4})")
_SOURCE = re.compile(r"来源\s*[:：]\s*(\S+)(?:\s+(\S{2,4}?)(?=\s|发布|$))?")


def _header(text: str, *, markup: str | None
            ) -> tuple[tuple[int, int] | None, dict[str, str]]:
    """Title from the first heading (Markdown ``#``/underlined, reST underlined) or else
    the first line of text, plus a source/date line if one follows closely."""
    meta: dict[str, str] = {}
    content = [(s, e) for s, e in _lines(text) if text[s:e].strip()]
    if not content:
        return None, meta
    at, title, header_end = _title(text, content, markup)
    start = content[at][0]
    if title and len(title) <= 120:
        meta["title"] = title
    for s, e in content[at + 1:at + 4]:
        line = text[s:e]
        src = _SOURCE.search(line)
        date = _DATE.search(line)
        if src or ("发布" in line and date):
            if src:
                meta["publisher"] = src.group(1)
                if src.group(2) and not _DATE.search(src.group(2)):
                    meta["author"] = src.group(2)
            if date:
                y, m, d = (int(g) for g in date.groups())
                meta["date"] = f"{y:04d}-{m:02d}-{d:02d}"
            header_end = e
            break
    return (start, header_end), meta


_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+_:.])\1{2,}\s*$")
_ATX = re.compile(r"^ {0,3}#{1,6}\s+(\S.*?)\s*#*\s*$")
_NOT_A_TITLE = re.compile(r"^\s*(<!--|\[!\[|!\[|\.\. |<[a-zA-Z/]|---\s*$|\W+$)")
_TITLE_LOOKAHEAD = 40  # lines of badges, comments and markup passed over to find the title


def _title(text: str, content: list[tuple[int, int]], markup: str | None
           ) -> tuple[int, str, int]:
    """(index into ``content`` of the title line, the title, end of its heading)."""
    lines = [text[s:e] for s, e in content]
    if markup is not None:
        in_comment = False
        for i, line in enumerate(lines[:_TITLE_LOOKAHEAD]):
            if in_comment or line.lstrip().startswith("<!--"):
                in_comment = "-->" not in line
                continue
            atx = _ATX.match(line) if markup == "markdown" else None
            if atx:
                return i, atx.group(1).strip(), content[i][1]
            under = lines[i + 1] if i + 1 < len(lines) else ""
            if not _UNDERLINE.match(line) and _UNDERLINE.match(under) \
                    and len(under.strip()) >= len(line.strip()) * 0.6:
                return i, line.strip(), content[i + 1][1]
            if not _NOT_A_TITLE.match(line):
                break  # text comes first: a later heading names a section, not the file
    for i, line in enumerate(lines):  # plain text, or markup without a heading
        if not _NOT_A_TITLE.match(line):
            return i, line.strip(), content[i][1]
    return 0, "", content[0][1]


# Lines that are site chrome wherever they appear.
_CHROME_LINE = re.compile(
    r"^\s*(\(?\s*(责任编辑|编辑|责编)\s*[:：]|\[?\s*字号|本网站|电话\s*[:：]|电子邮箱|E-?mail\s*[:：]"
    r"|感谢您对|版权所有|Copyright|©|更多\s*>>|分享到|打印本页|关闭窗口)",
    re.IGNORECASE,
)
# Headings after which everything is footer: statements, news lists, related links.
_FOOTER_HEADING = re.compile(
    r"^\s*(网站声明|版权声明|免责声明|最新新闻|相关新闻|相关阅读|热点新闻|推荐阅读|专题|友情链接)\s*$"
)


def _boilerplate_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    in_footer = False
    for start, end in _lines(text):
        line = text[start:end]
        if not line.strip():
            continue
        if _FOOTER_HEADING.match(line):
            in_footer = True
        if in_footer or _CHROME_LINE.match(line):
            if spans and not text[spans[-1][1]:start].strip():
                spans[-1] = (spans[-1][0], end)  # merge across blank lines
            else:
                spans.append((start, end))
    return spans


def _lines(text: str) -> Iterator[tuple[int, int]]:
    pos = 0
    for line in text.split("\n"):
        yield pos, pos + len(line)
        pos += len(line) + 1


