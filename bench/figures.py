"""The current figures: every test set of the repository asked through the whole answer
path, written into docs/benchmarks.md between its ``figures`` markers.

    python -m bench.figures            # the repository's own sets (a few minutes)
    python -m bench.figures --cmrc     # also held-out CMRC train and CMRC trial (~15 min)

Each set is indexed in a scratch state folder (the documents it is asked about, and the
ones it is asked among), asked with the default settings, and scored by bot/evaluation.py.
Each row says what the set is for: a **test** set played no part in any choice; a
**validation** set chose between variants; a **regression** set shaped some rules
(its figure is a check, not an estimate). The table records the date and commit.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot import evaluation
from train.lab import testset_engine

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- figures:start -->", "<!-- figures:end -->"


@dataclass(frozen=True)
class TestSetRun:
    name: str
    role: str  # test | validation | regression
    questions: str  # the test set
    documents: tuple[str, ...]  # what is indexed (folders or files); () = its contexts
    slow: bool = False
    seen: str = ""  # a test set one of whose failures was looked at while writing a rule


SETS = (
    TestSetRun("seed article", "regression", "tests/data/seed_testset.jsonl", ("seeds",)),
    TestSetRun("our documents (guide, policy, clinic page, .docx)", "regression",
               "tests/data/docs_testset.jsonl", ("tests/data/docs",)),
    TestSetRun("conversations (6 chats of 6 turns)", "regression",
               "tests/data/conversations/conversations.jsonl",
               ("seeds", "tests/data/docs", "tests/data/conversations/kettle_faq.md")),
    TestSetRun("English documents", "regression", "bench/data/english_testset.jsonl",
               ("bench/data/english",)),
    TestSetRun("tables (espresso manual, in a mixed index)", "test",
               "tests/data/tables/questions.jsonl",
               ("seeds", "tests/data/docs", "tests/data/conversations/kettle_faq.md",
                "tests/data/tables/northwind_k2.md"),
               seen="its weight question was seen failing before the weight type was written"),
    TestSetRun("English questions, Chinese notice", "test",
               "tests/data/bridge/library_questions.jsonl",
               ("tests/data/bridge/library_rules.md",)),
    TestSetRun("Chinese questions, English manual", "test", "tests/data/reverse/test.jsonl",
               ("seeds", "tests/data/docs", "tests/data/conversations/kettle_faq.md",
                "tests/data/tables/northwind_k2.md"),
               seen="its price question was seen failing before prices became money"),
    TestSetRun("CMRC 2018 train, held-out articles (cut answers)", "validation",
               "reports/heldout-cmrc.json", (), slow=True),
    TestSetRun("CMRC 2018 trial", "test", str(DATA / "cmrc2018_trial.json"), (), slow=True),
)
COLUMNS = ("accuracy", "em", "f1", "refusal_recall", "false_refusal_rate", "citation_hit",
           "latency_p50_ms")


def measure(run: TestSetRun, home: Path) -> dict[str, Any]:
    engine, data = testset_engine(home, ROOT / run.questions,
                                  [ROOT / d for d in run.documents])
    rows = list(evaluation.run(engine, data.items))
    metrics = evaluation.metrics(rows)
    metrics["n"] = f"{metrics['answerable']} + {metrics['unanswerable']}"
    return metrics


def table(results: list[tuple[TestSetRun, dict[str, Any]]], commit: str) -> str:
    day = datetime.date.today().isoformat()
    head = ("| set | role | questions (answerable + not) | contains gold | EM | F1 | "
            "unanswerable refused | answerable refused | gold passage cited | p50 ms |")
    lines = [f"Measured {day} at `{commit}` with `python -m bench.figures"
             f"{' --cmrc' if any(r.slow for r, _ in results) else ''}` (2 CPU cores).",
             "", head, "|" + "---|" * 10]
    notes = []
    for run, m in results:
        cells = [_fmt(m.get(c)) for c in COLUMNS]
        role = run.role
        if run.seen:
            notes.append(f"{len(notes) + 1}. {run.name}: {run.seen}; that figure is partly "
                         "a regression check.")
            role += f" ({len(notes)})"
        lines.append(f"| {run.name} (`{Path(run.questions).name}`) | {role} | {m['n']} | "
                     + " | ".join(cells) + " |")
    return "\n".join([*lines, "", *notes] if notes else lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:.0f}" if isinstance(value, float) and value > 1 else f"{value:.3f}"


def write(text: str, path: Path = DOC) -> None:
    doc = path.read_text("utf-8")
    before, _, rest = doc.partition(START)
    _, _, after = rest.partition(END)
    path.write_text(f"{before}{START}\n{text}\n{END}{after}", "utf-8")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cmrc", action="store_true",
                    help="also the CMRC sets (run `python -m train.heldout` first)")
    ap.add_argument("--no-write", action="store_true", help="print, do not edit the docs")
    args = ap.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip() or "unknown"
    results = []
    for run in SETS:
        if run.slow and not args.cmrc:
            continue
        if not (ROOT / run.questions).exists():
            print(f"skipped {run.name}: {run.questions} is not there")
            continue
        with tempfile.TemporaryDirectory(prefix="qabot-figures-") as home:
            metrics = measure(run, Path(home))
        results.append((run, metrics))
        print(run.name, {c: metrics.get(c) for c in COLUMNS})
    text = table(results, commit)
    print(text)
    if not args.no_write:
        write(text)


if __name__ == "__main__":
    main()
