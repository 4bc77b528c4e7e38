"""Documents as people write them (issue #31): tables read as facts, Word files, HTML
with its chrome dropped, quotes that keep their answer whole, citations a person can
follow. The documents are ours (tests/data/docs/): an English product guide with a spec
table and an error-code table, a Chinese travel policy with a rate table, an HTML price
page, a Word file with a table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ROOT, make_settings

from bot.answerers.trained import _clip
from bot.chunking import KIND_BODY, KIND_TABLE, iter_chunks, retrieval_text, table_facts
from bot.cli import cli
from bot.facts import asked_cell, days_named, is_another_row, names_another_row
from bot.loading import discover, load

DOCS = ROOT / "tests" / "data" / "docs"
POLICY = DOCS / "travel_policy.md"


def facts_of(path: Path) -> list:
    doc = load(path, root=path.parent)
    return [c for c in iter_chunks(doc, size=130, overlap=40) if c.kind == KIND_TABLE]


def test_a_rate_table_row_is_one_fact_with_its_headers_at_the_rows_characters() -> None:
    rows = facts_of(POLICY)
    text = POLICY.read_text("utf-8")
    assert rows[0].text == (
        "城市类别: 一类城市(北京、上海、深圳、广州) | 副总经理以上: 900元 | "
        "部门负责人: 650元 | 其他员工: 500元")
    for r in rows:  # the citation points at the row as written in the file
        assert text[r.start:r.end].startswith("| ") and text[r.start:r.end].endswith(" |")
        assert text.count("\n", 0, r.start) + 1 == r.line
    assert "住宿费" in rows[0].meta["caption"]  # the line that introduced the table


def test_key_value_tables_and_tables_without_a_header_row() -> None:
    key_value = "| Item | Value |\n|---|---|\n| Capacity | 1,280 Wh |\n| Weight | 13.2 kg |\n"
    assert [f for _, _, f in table_facts(key_value, 0, len(key_value))] == [
        "Item: Capacity | Value: 1,280 Wh", "Item: Weight | Value: 13.2 kg"]
    bare = "| E14 | Solar input over-voltage | Reconnect in parallel |\n| E22 | Overload | |\n"
    assert [f for _, _, f in table_facts(bare, 0, len(bare))] == [
        "E14: Solar input over-voltage | Reconnect in parallel", "E22: Overload"]


def test_a_row_is_found_by_its_title_and_caption_and_shown_as_itself() -> None:
    guide = DOCS / "ridgeline_guide.md"
    row = next(c for c in facts_of(guide) if "Capacity" in c.text)
    assert row.text == "Item: Capacity | Value: 1,280 Wh"  # what is read and quoted
    assert retrieval_text(row.text, row.kind, row.meta) == (  # what is embedded and indexed
        "Ridgeline R5 Portable Power Station: User Guide · Specifications · "
        "Item: Capacity | Value: 1,280 Wh")
    assert retrieval_text("Prose.", KIND_BODY, row.meta) == "Prose."


@pytest.mark.parametrize(("question", "fact", "cell"), [
    ("部门负责人在一类城市出差每晚住宿标准是多少?",
     "城市类别: 一类城市 | 副总经理以上: 900元 | 部门负责人: 650元 | 其他员工: 500元", "650元"),
    ("What is the battery capacity?", "Item: Capacity | Value: 1,280 Wh", "1,280 Wh"),
    ("What does error E14 mean?",
     "Code: E14 | Meaning: Solar input over-voltage | What to do: Reconnect",
     "Solar input over-voltage"),
    ("What does E14 mean?", "E14: Solar input over-voltage | Reconnect",
     "Solar input over-voltage"),
    ("一类城市的住宿标准是多少?",
     "城市类别: 一类城市 | 副总经理以上: 900元 | 部门负责人: 650元", None),
])
def test_the_cell_a_question_asks_for(question: str, fact: str, cell: str | None) -> None:
    found = asked_cell(fact, question)
    assert (fact[found[0]:found[1]] if found else None) == cell


def test_a_span_on_a_header_means_that_cells_value() -> None:
    from bot.facts import cell_at

    fact = "Item: Laptop | Fee per day: 5.00 EUR | Maximum: 50 EUR"
    for inside, value in (("day", "5.00 EUR"), ("Maximum", "50 EUR"), ("Laptop", "Laptop")):
        found = cell_at(fact, fact.index(inside))
        assert found is not None and fact[found[0]:found[1]] == value


def test_a_code_the_row_does_not_hold_is_another_row() -> None:
    fact = "Code: E31 | Meaning: Fan failure"
    assert names_another_row("What does error E99 mean?", fact, "Error codes")
    assert not names_another_row("What does error E31 mean?", fact, "Error codes")
    assert not names_another_row("Does the R5 fan fail?", fact, "Ridgeline R5 guide")


@pytest.mark.parametrize(("text", "days"), [
    ("周三下午几点开放?", {2}), ("星期二至星期五", {1, 2, 3, 4}), ("周六、周日", {5, 6}),
    ("礼拜天", {6}), ("周五至周一", {4, 5, 6, 0}), ("周末开吗?", {5, 6}),
    ("Tue–Fri", {1, 2, 3, 4}), ("Tuesday to Sunday", {1, 2, 3, 4, 5, 6}), ("Sat, Sun", {5, 6}),
    ("Is it open on weekdays?", {0, 1, 2, 3, 4}), ("wednesday", {2}),
    # not days: an age, words that share a day's letters
    ("年满14周岁的市民", set()), ("We sat in the sun", set()), ("monitor", set()),
])
def test_the_days_of_the_week_a_text_names(text: str, days: set[int]) -> None:
    assert days_named(text) == days


def test_a_day_the_row_does_not_cover_is_another_row() -> None:
    closed = "日期: 周一 | 上午: 闭馆 | 下午: 闭馆"
    open_ = "日期: 周二至周五 | 上午: 9:00-11:30 | 下午: 14:00-17:30"
    assert names_another_row("周三下午几点开放?", closed)
    assert not names_another_row("周三下午几点开放?", open_)
    assert not names_another_row("下午几点开放?", closed)  # no day asked: any row
    assert not names_another_row("周三下午几点开放?", "票种: 单次票 | 价格: 30元")  # no days
    meta = {"kind": KIND_TABLE, "caption": "开放时间"}
    assert is_another_row("周三下午几点开放?", closed, meta)
    assert not is_another_row("周三下午几点开放?", closed, {"kind": KIND_BODY})


def test_html_tables_keep_their_cells_apart_and_chrome_is_dropped() -> None:
    doc = load(DOCS / "clinic_prices.html", root=DOCS)
    assert "General consultation45 EUR" not in doc.text
    assert "| General consultation | 45 EUR | 15 minutes |" in doc.text
    assert "Book online" not in doc.text and "Latest news" not in doc.text  # nav, aside
    assert "Imprint" not in doc.text  # the page's footer bar
    assert doc.meta["title"] == "Harbour Street Clinic: prices"
    assert doc.meta["date"] == "2026-02-14"
    rows = facts_of(DOCS / "clinic_prices.html")
    assert rows[1].text == "Service: Blood test | Price: 28 EUR | Duration: 10 minutes"


def test_word_files_are_read_with_headings_and_tables() -> None:
    found = discover([DOCS])
    assert DOCS / "meeting_rooms.docx" in found.files
    doc = load(DOCS / "meeting_rooms.docx", root=DOCS)
    assert doc.meta["title"] == "会议室使用规定"
    assert "各会议室须提前一天在行政系统预约" in doc.text
    rows = facts_of(DOCS / "meeting_rooms.docx")
    assert [r.text for r in rows][1] == "会议室: 松涛厅 | 容纳人数: 12人 | 所在楼层: 5楼"
    for r in rows:  # offsets index the extracted text, as for PDF
        assert doc.text[r.start:r.end].startswith("| ")


def test_a_damaged_word_file_is_skipped_with_a_message(tmp_path: Path) -> None:
    from bot.errors import DocumentError

    bad = tmp_path / "broken.docx"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DocumentError, match=r"not a readable \.docx"):
        load(bad, root=tmp_path)


def test_a_quote_is_never_cut_inside_a_time_or_a_number() -> None:
    text = ("The service desk on the ground floor of the main building is open on weekdays "
            "from 9:00 to 13:00, and on Saturdays from 10:00 to 12:00, except holidays.")
    at = text.index("9:00 to 13:00")
    start, end = _clip(text, (0, len(text)), (at, at + len("9:00 to 13:00")), 80)
    assert "9:00 to 13:00" in text[start:end] and not text[start:end].endswith("13:")


# ----- answers over our own documents, with the real bundled models ---------------------------
@pytest.fixture(scope="module")
def docs_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bot.embeddings import make_embeddings
    from bot.ingest import ingest

    home = tmp_path_factory.mktemp("docs-home")
    settings = make_settings(home)
    ingest(settings, [DOCS], make_embeddings(settings.embeddings))
    return home


@pytest.mark.slow
@pytest.mark.parametrize(("question", "cell"), [
    ("What is the battery capacity?", "1,280 Wh"),
    ("What does error E14 mean?", "Solar input over-voltage"),
    ("部门负责人在一类城市出差每晚住宿标准是多少?", "650元"),
    ("其他员工在二类城市出差的住宿标准是多少?", "400元"),
    ("How much is a blood test?", "28 EUR"),
    ("松涛厅可以容纳多少人?", "12人"),
])
def test_a_question_whose_answer_is_a_cell_gets_the_cell(docs_home: Path, question: str,
                                                         cell: str) -> None:
    result = CliRunner().invoke(cli, ["ask", "--json", question],
                                env={"QABOT_HOME": str(docs_home)})
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["short_answer"] == cell and not answer["refused"]
    cited = answer["citations"][0]
    text = (DOCS / Path(cited["shown"]).name).read_bytes()
    if cited["line"] is not None:  # a text file: the citation is the row as written
        row = text.decode("utf-8")[cited["start"]:cited["end"]]
        assert row.startswith("|") and cell in row


@pytest.mark.slow
def test_a_row_is_retrieved_among_other_documents_by_its_documents_name(
        tmp_path: Path) -> None:
    """Among several documents a row alone ("Item: Weight | Value: 6.4 kg") does not say
    whose weight it is; indexed with its title it is found for the product's name."""
    from bot.embeddings import make_embeddings
    from bot.ingest import ingest
    from bot.store import Index

    settings = make_settings(tmp_path / "home")
    ingest(settings, [DOCS, ROOT / "tests" / "data" / "tables" / "northwind_k2.md"],
           make_embeddings(settings.embeddings))
    index = Index.open(settings, make_embeddings(settings.embeddings))
    try:
        # the Ridgeline guide has a weight row too, and other passages name the K2
        top = index.bm25_search("What is the weight of the Northwind K2?", 1)
        assert index.get_chunks([top[0][0]])[top[0][0]].page_content == (
            "Item: Weight | Value: 6.4 kg")
    finally:
        index.close()


@pytest.fixture(scope="module")
def timetables_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A swimming pool's and a gym's opening hours (tests/data/timetables/, ours): rows
    keyed by days and ranges of days."""
    from bot.embeddings import make_embeddings
    from bot.ingest import ingest

    home = tmp_path_factory.mktemp("timetables-home")
    settings = make_settings(home)
    ingest(settings, [ROOT / "tests" / "data" / "timetables"], make_embeddings(settings.embeddings))
    return home


@pytest.mark.slow
@pytest.mark.parametrize(("question", "cell"), [
    ("星期三下午几点开放?", "12:00-13:30"),  # the row 周二至周五; 周一's and 周六's are not
    ("周四晚上几点开放?", "18:30-21:30"),  # for Thursday, whatever their words
    ("周日上午几点开门?", "8:00"),  # 周六、周日; the start of 8:00-12:00
    ("周一下午开放吗?", "停场保养"),
    ("周日下午几点关门?", "17:30"),  # the end of the cell's 13:00-17:30
    ("星期二上午几点开门?", "6:30"),
    ("What time does the gym open on Wednesday?", "7:00"),
    ("When does the gym close on Sunday?", "18:00"),
])
def test_a_timetable_answers_from_the_row_for_the_day_asked_or_not_at_all(
        timetables_home: Path, question: str, cell: str) -> None:
    """A row keyed by other days is never the answer: the right row's cell, or a
    refusal where the reader is not sure enough of it (no answer from another day's
    row is better than a wrong one)."""
    result = CliRunner().invoke(cli, ["ask", "--json", question],
                                env={"QABOT_HOME": str(timetables_home)})
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["refused"] or answer["short_answer"] == cell


@pytest.mark.slow
def test_a_code_the_table_has_no_row_for_is_refused(docs_home: Path) -> None:
    result = CliRunner().invoke(cli, ["ask", "--json", "What does error E99 mean?"],
                                env={"QABOT_HOME": str(docs_home)})
    assert json.loads(result.stdout)["refused"] is True


# ----- citations a person can follow ------------------------------------------------------------
def test_sources_are_shown_as_the_user_knows_them_never_as_server_paths(
        tmp_path: Path) -> None:
    srv = tmp_path / "srv" / "bot"
    shutil.copytree(DOCS, srv / "docs")
    env = {"QABOT_HOME": str(tmp_path / "home"), "QABOT_EMBEDDINGS_BACKEND": "hashing"}
    assert CliRunner().invoke(cli, ["ingest", str(srv / "docs")], env=env).exit_code == 0
    question = "其他员工在二类城市出差的住宿标准是多少?"
    shown = CliRunner().invoke(cli, ["ask", question], env=env)
    assert shown.exit_code == 0, shown.output
    assert str(tmp_path) not in shown.stdout  # no absolute path on the terminal
    assert "docs/travel_policy.md:13 (chars " in shown.stdout  # folder/file:line (chars)
    data = json.loads(CliRunner().invoke(cli, ["ask", "--json", question], env=env).stdout)
    cited = next(c for c in data["citations"] + data["related"]
                 if c["shown"] == "docs/travel_policy.md" and c["line"] == 13)
    assert cited["path"] == (srv / "docs" / "travel_policy.md").resolve().as_posix()
    assert cited["shown"] == "docs/travel_policy.md" and cited["line"] == 13


def test_the_snippet_is_the_cited_sentence_not_the_chunk_start() -> None:
    from bot.answers import Citation, Quote
    from bot.present import cite_line

    text = "开头的一句话与问题无关。" * 3 + "总投资1.4亿元的霍城县江苏医院综合病房大楼。"
    c = Citation(1, "a.txt", "id", 100, 100 + len(text), text, 0.5, shown="docs/a.txt", line=3)
    at = text.index("总投资")
    line = cite_line(c, [Quote("总投资1.4亿元的霍城县江苏医院综合病房大楼。", (1,), "a.txt",
                               100 + at, 100 + len(text))])
    assert line.startswith("[1] docs/a.txt:3 (chars 100-") and "  …总投资1.4亿元" in line


def test_telegram_replies_never_show_a_server_path(tmp_path: Path) -> None:
    import time

    from fakes.harness import RunningBot
    from fakes.telegram_api import FakeBotAPI

    srv = tmp_path / "srv" / "bot"
    shutil.copytree(DOCS, srv / "docs")
    home = tmp_path / "home"
    env = {"QABOT_HOME": str(home), "QABOT_EMBEDDINGS_BACKEND": "hashing"}
    assert CliRunner().invoke(cli, ["ingest", str(srv / "docs")], env=env).exit_code == 0
    fake = FakeBotAPI().start()
    try:
        with RunningBot(home, fake, extra={"embeddings.backend": "hashing"}):
            fake.message(1, 11, "How much is a blood test?")
            answer = fake.wait_for(lambda: fake.sent.get(1) and fake.sent[1][0])
            fake.click(1, 11, answer, f"src:{_turn_of(answer)}")
            fake.wait_for(lambda: len(fake.sent[1]) >= 2)
            time.sleep(0.5)
    finally:
        fake.close()
    texts = fake.texts(1)
    assert len(texts) >= 2 and all(str(tmp_path) not in t for t in texts)
    assert "docs/clinic_prices.html (chars " in "\n".join(texts)


def _turn_of(sent) -> str:  # the Sources button's callback data: src:<turn id>
    return str(sent.reply_markup["inline_keyboard"][0][0]["callback_data"]).split(":")[1]
