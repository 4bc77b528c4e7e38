"""Loading and chunking: exact offsets, sentence boundaries, boilerplate, stable ids."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from conftest import ROOT, SEED

from bot.chunking import KIND_BOILERPLATE, KIND_HEADER, chunk_document
from bot.errors import DocumentError
from bot.loading import discover, load
from bot.sentences import split_sentences
from fakes.pdf import make_pdf

SIZES = [(200, 60), (80, 20), (500, 0), (40, 10)]


@pytest.fixture(scope="module")
def seed_doc():
    return load(SEED, root=ROOT)


@pytest.mark.parametrize(("size", "overlap"), SIZES)
def test_offsets_round_trip_and_no_empty_chunks(seed_doc, size: int, overlap: int) -> None:
    chunks = chunk_document(seed_doc, size=size, overlap=overlap)
    assert chunks
    for c in chunks:
        assert seed_doc.text[c.start:c.end] == c.text
        assert c.text.strip() == c.text and c.text


@pytest.mark.parametrize(("size", "overlap"), SIZES)
def test_chunks_end_on_sentence_boundaries_unless_a_sentence_is_too_long(
        seed_doc, size: int, overlap: int) -> None:
    sentence_ends = {s.end for s in split_sentences(seed_doc.text)}
    for c in chunk_document(seed_doc, size=size, overlap=overlap):
        if len(c.text) <= size and c.end in sentence_ends:
            continue
        # a cut: only allowed inside a sentence longer than the limit
        containing = [s for s in split_sentences(seed_doc.text)
                      if s.start <= c.start < s.end or s.start < c.end <= s.end]
        assert any(s.end - s.start > size for s in containing), c.text
        assert len(c.text) <= size


def test_chunks_cover_every_sentence(seed_doc) -> None:
    chunks = chunk_document(seed_doc, size=200, overlap=60)
    for s in split_sentences(seed_doc.text):
        assert any(c.start <= s.start and s.end <= c.end for c in chunks), \
            seed_doc.text[s.start:s.end]


def test_overlap_repeats_trailing_sentences(seed_doc) -> None:
    chunks = [c for c in chunk_document(seed_doc, size=200, overlap=60) if c.kind == "body"]
    overlaps = [b.start < a.end for a, b in itertools.pairwise(chunks)]
    assert any(overlaps)
    for a, b in itertools.pairwise(chunks):
        assert b.start > a.start  # always moves forward
        assert a.end - b.start <= 60 or b.start >= a.end


def test_sentence_splitter_handles_chinese_and_ascii_ends() -> None:
    text = "第一句。第二句!第三句?  第四句;第五句\n第六句…“引号。”之后 Mr. Smith paid 1.4 yuan. End"
    parts = [text[s.start:s.end] for s in split_sentences(text)]
    assert parts == ["第一句。", "第二句!", "第三句?", "第四句;", "第五句", "第六句…",
                     "“引号。”", "之后 Mr. Smith paid 1.4 yuan.", "End"]


def test_terminators_inside_brackets_do_not_end_a_sentence() -> None:
    text = ("萱侬律(又名：「东芭乐园」；泰文：สวน)位于泰国。《卡拉OK.LIVE！‧台北‧我》是专辑。"
            "（未闭合的括号；" + "很长" * 100 + "。后一句。")
    parts = [text[s.start:s.end] for s in split_sentences(text)]
    assert parts[:2] == ["萱侬律(又名：「东芭乐园」；泰文：สวน)位于泰国。",
                         "《卡拉OK.LIVE！‧台北‧我》是专辑。"]
    # an unclosed bracket stops protecting after _MAX_BRACKETED characters: the next
    # terminator ends the sentence, and the rest of the document is split as usual
    assert parts[2].startswith("（未闭合的括号；") and parts[2].endswith("很长。")
    assert parts[3:] == ["后一句。"]


def test_chunk_ids_are_stable_and_content_derived(seed_doc, tmp_path: Path) -> None:
    first = chunk_document(seed_doc, size=200, overlap=60)
    again = chunk_document(load(SEED, root=ROOT), size=200, overlap=60)
    assert [c.id for c in first] == [c.id for c in again]
    assert len({c.id for c in first}) == len(first)
    # an edit at the top shifts offsets but keeps the ids of untouched chunks
    edited = tmp_path / "seeds" / SEED.name
    edited.parent.mkdir()
    edited.write_text("补充说明。\n" + SEED.read_text("utf-8"), "utf-8")
    moved = chunk_document(load(edited, root=tmp_path), size=200, overlap=60)
    assert len({c.id for c in first} & {c.id for c in moved}) >= len(first) - 3


def test_header_metadata_is_read_and_searchable(seed_doc) -> None:
    assert seed_doc.meta["title"] == "跨越千里的对口支援——江苏江阴、新疆霍城打造互嵌式发展典范"
    assert seed_doc.meta["publisher"] == "中国民族报"
    assert seed_doc.meta["author"] == "张华"
    assert seed_doc.meta["date"] == "2022-12-23"
    assert seed_doc.meta["editor"] == "马永"
    header = [c for c in chunk_document(seed_doc, size=200, overlap=60) if c.kind == KIND_HEADER]
    assert len(header) == 1 and "发布日期:2022-12-23" in header[0].text
    assert header[0].meta["title"] == seed_doc.meta["title"]


def test_site_chrome_is_marked_and_kept_apart(seed_doc) -> None:
    chunks = chunk_document(seed_doc, size=200, overlap=60)
    chrome = [c for c in chunks if c.kind == KIND_BOILERPLATE]
    body = [c for c in chunks if c.kind == "body"]
    text = "".join(c.text for c in chrome)
    markers = ("网站声明", "电话:010-82685629", "zgmzb@sina.com", "最新新闻",
               "中国民族报系列评论员文章")
    for marker in markers:
        assert marker in text
        assert not any(marker in c.text for c in body)
    assert any("江阴" in c.text for c in body)


def test_html_markup_is_stripped(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text("<html><head><title>标题 &amp; 测试</title><style>p{color:red}</style>"
                    "<script>var x = '<p>';</script></head><body><h1>标题 &amp; 测试</h1>"
                    "<p>第一段 <b>加粗</b> 文字。</p><p>价格 &lt;100&gt; 元。</p></body></html>",
                    "utf-8")
    doc = load(page, root=tmp_path)
    assert "<" not in doc.text.replace("<100>", "")
    assert "第一段 加粗 文字。" in doc.text and "价格 <100> 元。" in doc.text
    assert "color" not in doc.text and "var x" not in doc.text
    assert doc.meta["title"] == "标题 & 测试"


def test_markdown_title_and_gb18030_text(tmp_path: Path) -> None:
    md = tmp_path / "a.md"
    md.write_text("# 我的笔记\n\n正文一句。", "utf-8")
    assert load(md, root=tmp_path).meta["title"] == "我的笔记"
    gbk = tmp_path / "b.txt"
    gbk.write_bytes("国标编码的中文文本。".encode("gb18030"))
    assert load(gbk, root=tmp_path).text.startswith("国标编码的中文文本")


def test_binary_and_empty_files_raise_clear_errors(tmp_path: Path) -> None:
    binary = tmp_path / "image.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(DocumentError, match="looks binary"):
        load(binary, root=tmp_path)
    empty = tmp_path / "empty.md"
    empty.write_text("  \n", "utf-8")
    with pytest.raises(DocumentError, match="no text"):
        load(empty, root=tmp_path)


def test_discover_skips_hidden_and_unsupported(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.txt").write_text("hidden", "utf-8")
    (tmp_path / "a.txt").write_text("a", "utf-8")
    (tmp_path / "b.xlsx").write_bytes(b"PK")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.md").write_text("c", "utf-8")
    (tmp_path / "sub" / "d.pdf").write_bytes(b"%PDF")
    found, ignored = discover([tmp_path])[:2]
    assert [p.name for p in found] == ["a.txt", "c.md", "d.pdf"]
    assert [p.name for p in ignored] == ["b.xlsx"]
    with pytest.raises(DocumentError, match="does not exist"):
        discover([tmp_path / "missing"])


def test_pdf_text_layer_is_loaded(tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(make_pdf(["Annual report 2024.", "Revenue grew 12 percent."]))
    doc = load(pdf, root=tmp_path)
    assert doc.text == "Annual report 2024.\nRevenue grew 12 percent.\n"
    assert doc.meta["title"] == "Annual report 2024."
    chunks = chunk_document(doc, size=200, overlap=60)
    assert any("12 percent" in c.text for c in chunks)


def test_broken_and_textless_pdfs_are_clear_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4\nnot really a pdf")
    with pytest.raises(DocumentError, match="not a readable PDF"):
        load(broken, root=tmp_path)
    empty = tmp_path / "scan.pdf"
    empty.write_bytes(make_pdf([]))
    with pytest.raises(DocumentError, match="no text layer"):
        load(empty, root=tmp_path)


@pytest.mark.parametrize("entity", ["&amp;", "&#38;", "&#x26;", "&nbsp;"])
def test_a_character_reference_does_not_end_a_sentence(entity: str) -> None:
    text = f"Use X{entity}Y for both. 价格{entity}折扣见下表；其他另议。"
    assert [text[s.start:s.end] for s in split_sentences(text)] == [
        f"Use X{entity}Y for both.", f"价格{entity}折扣见下表；", "其他另议。"]


# ----- English sentences and hard-wrapped text ---------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("Kearney Boulevard is named after M. Theo Kearney, a millionaire. He was rich.",
     ["Kearney Boulevard is named after M. Theo Kearney, a millionaire.", "He was rich."]),
    ("It is known in English by John C. Messenger. The end.",
     ["It is known in English by John C. Messenger.", "The end."]),
    ("Dr. Smith met Mr. Jones. See e.g. the manual, approx. 5 pages. Next.",
     ["Dr. Smith met Mr. Jones.", "See e.g. the manual, approx. 5 pages.", "Next."]),
    ("A loop takes 2.69 ms. Version 1.2.3 is out. Pi is 3.14.",
     ["A loop takes 2.69 ms.", "Version 1.2.3 is out.", "Pi is 3.14."]),
    ("He waited... and then left. Nobody saw.", ["He waited... and then left.", "Nobody saw."]),
    ("They came in Nov. 1863 to stay. It rained.",
     ["They came in Nov. 1863 to stay.", "It rained."]),
])
def test_english_sentence_ends(text: str, expected: list[str]) -> None:
    assert [text[s.start:s.end] for s in split_sentences(text)] == expected


WRAPPED = """\
The Title
=========

Four score and seven years ago our fathers brought forth on this continent, a
new nation, conceived in Liberty, and dedicated to the proposition that all men
are created equal. Now we are engaged in a great civil war.

- a list item that is
  not joined to the paragraph above
- another item
| a table | row |
| another | row |

```
code line one
code line two
```
# A heading
Text after the heading.
"""


def test_hard_wrapped_lines_join_into_sentences_and_blocks_still_end_them() -> None:
    parts = [WRAPPED[s.start:s.end] for s in split_sentences(WRAPPED)]
    assert "Four score and seven years ago our fathers brought forth on this continent, a\n"\
        "new nation, conceived in Liberty, and dedicated to the proposition that all men\n"\
        "are created equal." in parts
    assert "Now we are engaged in a great civil war." in parts
    for line in ("The Title", "=========", "- another item", "# A heading",
                 "Text after the heading."):
        assert line in parts, line  # blocks are never glued to a neighbour
    # a table and a fenced code block are one unit each
    assert "| a table | row |\n| another | row |" in parts
    assert "```\ncode line one\ncode line two\n```" in parts


CODE_DOC = """\
Install
=======

Run the installer, then check the version. The commands below do both, and they
print the path they installed to, which you need for the next step.

```bash
pip install example

# the blank line above is inside the block
example --version
```

| option | meaning |
|--------|---------|
| -v     | verbose |
| -q     | quiet   |

After that, read the configuration section.
"""


@pytest.mark.parametrize("size", [60, 120, 400])
def test_code_blocks_stay_whole_and_table_rows_become_facts(tmp_path: Path, size: int) -> None:
    path = tmp_path / "install.md"
    path.write_text(CODE_DOC, "utf-8")
    chunks = chunk_document(load(path, root=tmp_path), size=size, overlap=10)
    fence = CODE_DOC[CODE_DOC.index("```bash"):CODE_DOC.rindex("```") + 3]
    holding = [c for c in chunks if fence in c.text]
    assert holding, fence  # whole, in a chunk of its own or with neighbours
    assert not any(c.text in fence and c.text != fence for c in chunks)  # no pieces
    # a table: one fact a row, its headers attached, cited at the row's characters
    rows = [c for c in chunks if c.kind == "table"]
    assert [c.text for c in rows] == ["option: -v | meaning: verbose",
                                      "option: -q | meaning: quiet"]
    assert [CODE_DOC[c.start:c.end] for c in rows] == ["| -v     | verbose |",
                                                       "| -q     | quiet   |"]
    assert not any("|---" in c.text for c in chunks)  # the table itself is in no chunk


def test_an_oversized_code_block_is_cut_at_line_ends() -> None:
    from bot.loading import Document

    body = "```\n" + "".join(f"line_{i} = compute({i}, scale=2)\n" for i in range(60)) + "```\n"
    doc = Document(path=Path("big.md"), source="big.md", text=body, sha256="x")
    chunks = chunk_document(doc, size=120, overlap=0)
    assert len(chunks) > 1
    for c in chunks[:-1]:
        assert body[c.end] == "\n", c.text  # every cut is at a line end


WRAPPED_ZH = (
    "都江堰位于四川省成都市都江堰市城西，坐落在成都平原西部的岷江上，始建于秦\n"
    "昭王末年，是蜀郡太守李冰父子在前人鳖灵开凿的基础上组织修建的大型水利工程\n"
    "，由分水鱼嘴、飞沙堰、宝瓶口等部分组成。两千多年来一直发挥着防洪灌溉的作\n"
    "用，使成都平原成为水旱从人、沃野千里的天府之国。\n"
    "\n"
    "灌溉面积\n"
    "截至2020年，灌溉面积约1130万亩。\n"
)


def test_hard_wrapped_chinese_lines_join_into_sentences() -> None:
    from bot.sentences import unwrap

    parts = [WRAPPED_ZH[s.start:s.end] for s in split_sentences(WRAPPED_ZH)]
    first = next(p for p in parts if p.startswith("都江堰位于"))
    assert first.endswith("等部分组成。") and first.count("\n") == 2
    assert unwrap(first).startswith(
        "都江堰位于四川省成都市都江堰市城西，坐落在成都平原西部的岷江上，始建于秦昭王末年，")
    assert "\n" not in unwrap(first)
    # a short heading line over its text is not a wrap
    assert "灌溉面积" in parts and "截至2020年，灌溉面积约1130万亩。" in parts


def test_sizes_in_tokens_of_a_measure(seed_doc) -> None:
    from bot.embeddings import estimate_tokens

    for size, overlap in ((60, 15), (130, 40)):
        chunks = chunk_document(seed_doc, size=size, overlap=overlap, measure=estimate_tokens)
        sentences = split_sentences(seed_doc.text)
        for c in chunks:
            assert seed_doc.text[c.start:c.end] == c.text
            inside = [s for s in sentences if c.start <= s.start and s.end <= c.end]
            tokens = sum(estimate_tokens(seed_doc.text[s.start:s.end]) for s in inside)
            # within the budget, unless it is (part of) one sentence over it
            assert tokens <= size or len(inside) <= 1, c.text


def test_the_seed_articles_lines_are_not_joined(seed_doc) -> None:
    # its lines are paragraphs, a title and a source line: none is a wrapped line
    for span in split_sentences(seed_doc.text):
        assert "\n" not in seed_doc.text[span.start:span.end]


@pytest.mark.parametrize("name", ["doc.md", "doc.rst", "doc.txt"])
def test_offsets_stay_exact_in_wrapped_documents(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(WRAPPED * 3, "utf-8")
    doc = load(path, root=tmp_path)
    source = path.read_text("utf-8")
    for chunk in chunk_document(doc, size=200, overlap=60):
        if chunk.kind == "table":  # a row as a fact: cited at the row as written
            assert source[chunk.start:chunk.end].startswith("| a")
            continue
        assert source[chunk.start:chunk.end] == chunk.text
        for s in split_sentences(source, chunk.start, chunk.end):
            assert s.start >= chunk.start and s.end <= chunk.end


def test_quotes_show_a_wrapped_line_break_as_a_space() -> None:
    from bot.sentences import unwrap

    assert unwrap("brought forth on this continent, a\nnew nation") == \
        "brought forth on this continent, a new nation"


# ----- titles and reST ------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "text", "title"), [
    ("a.md", "<!-- generated\n  by a tool -->\n[![ci](b.svg)](c)\n\n# My Project\n\nText.\n",
     "My Project"),
    ("b.md", "My Project\n==========\n\nText.\n", "My Project"),
    ("c.md", "An intro paragraph.\n\n## Install\n", "An intro paragraph."),
    ("d.rst", "========\nDocutils\n========\n\n.. contents::\n\nIntro.\n", "Docutils"),
    ("e.rst", ".. a comment\n\nTitle Here\n----------\n\nBody.\n", "Title Here"),
    ("f.html", "<html><body><h1>Big Heading</h1><p>Para.</p></body></html>", "Big Heading"),
])
def test_titles_come_from_the_first_heading(tmp_path: Path, name: str, text: str,
                                            title: str) -> None:
    (tmp_path / name).write_text(text, "utf-8")
    assert load(tmp_path / name, root=tmp_path).meta["title"] == title


def test_rest_documents_are_found_and_loaded(tmp_path: Path) -> None:
    (tmp_path / "guide.rst").write_text("Guide\n=====\n\nInstall it with pip.\n", "utf-8")
    found, ignored = discover([tmp_path])[:2]
    assert [p.name for p in found] == ["guide.rst"] and not ignored
    chunks = chunk_document(load(found[0], root=tmp_path), size=200, overlap=60)
    assert any("Install it with pip." in c.text for c in chunks)


def test_an_edit_rechunks_only_the_paragraphs_it_touches(tmp_path: Path) -> None:
    """Insert a section and change a number elsewhere: every passage of the untouched
    sections keeps its text and its chunk id (so citations of them stay valid)."""
    def page(sections: list[tuple[str, str]]) -> str:
        body = "".join(f"<h2>{h}</h2><p>{p}</p>" for h, p in sections)
        return f"<html><head><title>园区年报</title></head><body>{body}</body></html>"

    sections = [(f"第{i}部分", f"第{i}部分的内容说明了园区在这一年的工作。" * 4
                 + f"该部分涉及的投资为{i}亿元，覆盖{i * 10}个项目。") for i in range(1, 6)]
    path = tmp_path / "report.html"
    path.write_text(page(sections), "utf-8")
    before = chunk_document(load(path, root=tmp_path), size=200, overlap=60)
    edited = list(sections)
    # (a paragraph shorter than half a chunk would join the section after it)
    edited.insert(2, ("新增部分", "这是新增加的一个部分，介绍了新的合作项目。" * 6))
    edited[5] = (edited[5][0], edited[5][1].replace("5亿元", "6亿元"))
    path.write_text(page(edited), "utf-8")
    after = chunk_document(load(path, root=tmp_path), size=200, overlap=60)
    after_ids = {c.id: c.text for c in after}
    untouched = [c for c in before if "第5部分" not in c.text]
    assert len(untouched) >= 4
    for chunk in untouched:
        assert after_ids.get(chunk.id) == chunk.text, chunk.text[:30]
    assert any("新增加" in c.text for c in after) and any("6亿元" in c.text for c in after)
