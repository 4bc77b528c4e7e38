"""Fit the follow-up model (bot/models/followup.json) on conversations built from
CMRC 2018 train and DRCD.

    python -m train.followup            # about a minute on 2 cores

There is no conversational QA set here, so one is built from the span-extraction sets:
within an article, a question that names the article's subject (its title) follows
another question of the same article, and is used

* as written: a self-contained question (label 0);
* with the subject replaced by a pronoun (它/他/她/他们/该…/这个…, label 1);
* with the subject dropped (「是什么时候被任为主教的?」, label 1);
* as an ellipsis, 「那<what it asks about>呢?」 (label 1);

and, as topic switches, a question of another article that names that article's
title follows (label 0). English turns: the sets hold no English questions, so English
ones are made from templates over Latin-script names in the passages ("When was
<name> founded?" self-contained, "When was it founded?" and "What about <name>?"
follow-ups), mixed before and after Chinese turns (language switches).

Articles are split by a hash of their title: 70 % **fit** the weights (L2-regularised
logistic regression), 30 % **choose** the regularisation strength (lowest log loss);
the file records both, and the accuracy on the choose part. The evaluation that
counts is a hand-written conversation set over documents none of this saw
(tests/data/conversations.jsonl, ``make conversations``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bot import tokens
from bot.conversation import (
    FOLLOWUP_FEATURES,
    FOLLOWUP_PATH,
    followup_features,
    subject_of,
    topic_of,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PRONOUNS = ("它", "他", "她", "他们", "它们", "该", "这个", "其")
TEMPLATES = (  # (self-contained, with a pronoun): English turns, see the docstring
    ("When was {e} founded?", "When was it founded?"),
    ("Who founded {e}?", "Who founded it?"),
    ("Where is {e} located?", "Where is it located?"),
    ("What is {e} known for?", "What is it known for?"),
    ("How many people work at {e}?", "How many people work there?"),
    ("What does {e} do?", "What does it do?"),
    ("When did {e} start?", "When did it start?"),
    ("Who leads {e}?", "Who leads it?"),
    ("How big is {e}?", "How big is it?"),
    ("What is the name of {e}'s founder?", "What is the name of its founder?"),
)
# self-contained English questions that still hold a pronoun (it refers inside the
# question): without them "it" would decide alone
COMPOUND = ("What is {e} and what does it do?", "Who founded {e}, and when did it start?",
            "Where is {e} and how big is it?", "When did {e} open its first office?",
            "How many members does {e} have in its team?")
_LATIN_NAME = re.compile(r"\b[A-Z][A-Za-z]{2,}(?:\s[A-Z][A-Za-z]{2,})?\b")
CHOOSE_SHARE = 0.3
L2_GRID = (0.0, 1e-3, 1e-2, 1e-1, 1.0)


def articles() -> Iterator[tuple[str, list[str], str]]:
    """(title, questions, passage text) for every CMRC train and DRCD article, in
    simplified characters."""
    import opencc

    t2s = opencc.OpenCC("t2s")
    for name, convert in (("cmrc2018_train.json", False), ("drcd_dev.json", True),
                          ("drcd_test.json", True)):
        for a in json.loads((DATA / name).read_text("utf-8"))["data"]:
            conv = t2s.convert if convert else (lambda x: x)
            questions = [conv(qa["question"]) for p in a["paragraphs"] for qa in p["qas"]]
            text = " ".join(conv(p["context"]) for p in a["paragraphs"])
            yield conv(a["title"]), questions, text


def part(title: str) -> str:
    h = int(hashlib.sha256(title.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "choose" if h < CHOOSE_SHARE else "fit"


def dropped(question: str, title: str) -> str:
    out = question.replace(title, "", 1).lstrip("的之，, ")
    return out or question


def ellipsis(question: str, title: str) -> str | None:
    core = topic_of(question.replace(title, "", 1)).lstrip("的之 ").split(" ")[0]
    return f"那{core}呢?" if 1 <= len(core) <= 8 else None


Rows = list[tuple[dict[str, float], int]]


def examples(rng: random.Random, seg: tokens.Segmenter) -> dict[str, Rows]:
    out: dict[str, Rows] = {"fit": [], "choose": []}
    pool = list(articles())
    named = [(t, [q for q in qs if len(t) >= 2 and t in q], text) for t, qs, text in pool]
    named = [x for x in named if len(x[1]) >= 2]
    names = [(t, sorted(set(_LATIN_NAME.findall(text)))) for t, _, text in pool]
    names = [(t, n) for t, n in names if n]

    subjects: dict[str, str] = {}

    def add(split: str, prev: str, q: str, label: int) -> None:
        # the previous turn's subject as the answer path computes it
        if prev not in subjects:
            subjects[prev] = subject_of(prev, seg)
        out[split].append((followup_features(q, prev, subjects[prev], seg), label))

    for title, qs, _ in named:
        split = part(title)
        for q2 in qs:
            q1 = rng.choice([q for q in qs if q != q2] or qs)
            add(split, q1, q2, 0)
            pronoun = rng.choice(PRONOUNS)
            add(split, q1, q2.replace(title, pronoun, 1), 1)
            add(split, q1, dropped(q2, title), 1)
            ell = ellipsis(q2, title)
            if ell and rng.random() < 0.5:
                add(split, q1, ell, 1)
            other_title, other_qs, _ = rng.choice(named)
            if other_title != title:
                add(split, q1, rng.choice(other_qs), 0)
    for title, ns in names:
        split = part(title)
        e = rng.choice(ns)
        full, pron = rng.choice(TEMPLATES)
        zh = next((qs for t, qs, _ in named if t == title), None)
        first = full.format(e=e)
        add(split, first, pron, 1)  # English follow-up of an English question
        add(split, first, rng.choice(COMPOUND).format(e=rng.choice(ns)), 0)
        other = rng.choice(names)[1]
        add(split, first, f"What about {rng.choice(other)}?", 1)
        if zh:
            q = rng.choice(zh)
            add(split, q, first, 0)   # switch to English, naming its subject
            add(split, q, rng.choice(COMPOUND).format(e=e), 0)
            add(split, first, q, 0)   # back to Chinese, naming its subject
            add(split, q, pron, 1)    # an English pronoun after a Chinese question
            add(split, first, q.replace(title, rng.choice(PRONOUNS), 1), 1)
    return out


def matrix(rows: Rows) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray([[f[k] for k in FOLLOWUP_FEATURES] for f, _ in rows], np.float64)
    y = np.asarray([label for _, label in rows], np.float64)
    return x, y


def fit(x: np.ndarray, y: np.ndarray, l2: float) -> tuple[np.ndarray, float]:
    """Logistic regression by Newton's method (ten features: exact and fast)."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    theta = np.zeros(x.shape[1] + 1)
    reg = np.eye(len(theta)) * l2 * len(x)
    reg[-1, -1] = 0.0
    for _ in range(50):
        p = 1 / (1 + np.exp(-np.clip(xb @ theta, -30, 30)))
        grad = xb.T @ (p - y) + reg @ theta
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + reg + np.eye(len(theta)) * 1e-9
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-8:
            break
    return theta[:-1], float(theta[-1])


def scores(x: np.ndarray, y: np.ndarray, w: np.ndarray, b: float) -> dict[str, float]:
    p = 1 / (1 + np.exp(-np.clip(x @ w + b, -30, 30)))
    eps = 1e-9
    return {"log_loss": float(-np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))),
            "accuracy": float(np.mean((p > 0.5) == (y > 0.5))), "n": len(y)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(FOLLOWUP_PATH))
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args(argv)
    started = time.time()
    data = examples(random.Random(args.seed), tokens.FULL)
    xf, yf = matrix(data["fit"])
    xc, yc = matrix(data["choose"])
    grid = []
    for l2 in L2_GRID:
        w, b = fit(xf, yf, l2)
        grid.append({"l2": l2, **scores(xc, yc, w, b)})
    best = min(grid, key=lambda g: g["log_loss"])
    w, b = fit(xf, yf, best["l2"])
    out = {
        "features": list(FOLLOWUP_FEATURES),
        "weights": {k: round(float(v), 5) for k, v in zip(FOLLOWUP_FEATURES, w, strict=True)},
        "bias": round(b, 5),
        "data": "conversations built from CMRC 2018 train + DRCD dev/test (train/followup.py); "
                "fitted on the 'fit' articles, l2 chosen on the 'choose' articles (split by "
                "title hash); never CMRC trial or the seed/hand-written conversation sets",
        "fit": {**scores(xf, yf, w, b), "positives": int(yf.sum())},
        "choose": {**scores(xc, yc, w, b), "positives": int(yc.sum())},
        "l2_grid": grid, "seed": args.seed,
        "command": "python -m train.followup",
        "seconds": round(time.time() - started, 1),
    }
    Path(args.out).write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", "utf-8")
    print(json.dumps({k: out[k] for k in ("weights", "bias", "fit", "choose")},
                     indent=1, ensure_ascii=False))
    return out


if __name__ == "__main__":
    main()
