"""Measure a headline head: a second start/end head on the reader's last layer, fitted
to where CMRC 2018 puts an answer's edges. Measured, not shipped (docs/benchmarks.md).

    python -m train.headline [--questions 0]

The reader was trained on DRCD, whose answers are short; CMRC's gold answers are whole
phrases (「自治区“天山杯”优质工程」, not 「优质工程」). Retraining the reader on CMRC
taught it that convention but made it choose the answer sentence less often
(bot/models/reader.md). A second linear head on the same last-layer states would only
place a headline's edges and leave the reader's margins, and every decision made on
them, as they are: two rows more in the graph's head, nothing more to run.

Data:

* **fitted on** CMRC 2018 train articles outside the held-out titles
  (``train.reader.split_titles``, seed 13): the window the guided answerer reads around
  the sentence holding the gold answer (``Reader.around_windows``, the combiner's
  ``context_tokens``); start and end are each a softmax over that sentence's tokens,
  with an L2 pull of ``strength`` toward the reader's own head. The headline length
  costs (``train.span_length``'s ``fit``) are refitted for each head on the same
  questions, on logits from heads that did not see them (two folds);
* **compared on** the held-out titles' answerable questions, span level, CMRC's EM and
  F1, against the reader's own head with its own refitted costs (what ships).

Run on 2026-12-07 (~13 min on 2 cores), no head beat the reader's own by more than 3 of
981 questions, so none ships; the states are cached in ``--log``'s folder for a rerun
on another reader.
"""

from __future__ import annotations

import argparse
import json
import pickle
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bot.answerers.guided import load_combiner
from bot.encoder import E5File, Graph
from bot.reader import MODEL_CARD, clause_ends, pad, shared_reader
from bot.span_length import OTHER
from train.graph import build, trained_parts, write
from train.logs import logger
from train.span_length import IN_CLAUSE, apply, fit, fit_and_validation, score, sentence_of

Array = np.ndarray[Any, Any]

# L2 pull toward the reader's own head (per weight, against a mean cross-entropy per
# question): from a free fit (0) to nearly the reader's head (10). A first fit showed
# the free head overfits little with ~9,000 questions; the grid spans the range.
STRENGTHS = (0.0, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
BATCH = 16  # windows per graph run while reading


def gold_tokens(qa: dict[str, Any], starts: list[int], ends: list[int], a: int, b: int
                ) -> tuple[int, int] | None:
    """The first and last token (relative to ``a``) of the gold answer inside the
    target [a, b), or None when it is not wholly there."""
    gs, ge = qa["start"], qa["start"] + len(qa["text"])
    first = [k for k in range(a, b) if ends[k] > gs]
    last = [k for k in range(a, b) if starts[k] < ge]
    if not first or not last or starts[first[0]] > gs or ends[last[-1]] < ge:
        return None
    i, j = first[0] - a, last[-1] - a
    return (i, j) if i <= j else None


def gold_windows(qas: list[dict[str, Any]], graph: Graph, context_tokens: int, log: Any,
                 batch: int = BATCH) -> Any:
    """For each question, the window the guided answerer reads around the sentence
    holding its gold answer, run through ``graph``: (question, window, first and last+1
    token of the sentence, the gold's first and last token relative to it, the graph's
    output for the window), for the windows that hold the whole gold."""
    reader = shared_reader(0)
    started = time.time()
    pending: list[tuple[dict[str, Any], Any, int, int]] = []

    def flush() -> Any:
        ids, mask = pad([w.ids for _, w, _, _ in pending], reader.tokenizer.pad)
        states = graph.run(reader.embedding(ids), mask)
        for (qa, w, a, b), h in zip(pending, states, strict=True):
            gold = gold_tokens(qa, w.starts, w.ends, a, b)
            if gold is not None:
                yield qa, w, a, b, gold, h
        pending.clear()

    for n, qa in enumerate(qas, 1):
        target = (0, *sentence_of(qa["context"], qa["start"]))
        for _, w, a, b in reader.around_windows(qa["question"], [qa["context"]], [target],
                                                context_tokens):
            pending.append((qa, w, a, b))
        if len(pending) >= batch:
            yield from flush()
        if n % 1000 == 0:
            log(f"{n}/{len(qas)} questions read ({time.time() - started:.0f} s)")
    if pending:
        yield from flush()


def read_states(qas: list[dict[str, Any]], graph: Graph, context_tokens: int, log: Any
                ) -> list[dict[str, Any]]:
    """Each question's target tokens' last-layer states (fp16), the gold's tokens and
    what scoring a span needs (characters, clause ends, all relative to the target)."""
    return [{"question": qa["question"], "gold": qa["text"], "text": qa["context"],
             "h": h[a:b].astype(np.float16), "i": gold[0], "j": gold[1],
             "starts": w.starts[a:b], "ends": w.ends[a:b],
             "clause": clause_ends(qa["context"], w)[a:b]}
            for qa, w, a, b, gold, h in gold_windows(qas, graph, context_tokens, log)]


def fit_head(rows: list[dict[str, Any]], w0: Array, strength: float) -> Array:
    """Start and end weights [2, H] minimising the mean cross-entropy of the gold's
    first and last token among its sentence's tokens, plus ``strength`` times the
    squared distance to ``w0`` (a bias cancels in a softmax over one window's tokens)."""
    import torch  # training only

    width = max(len(r["h"]) for r in rows)
    hid = np.zeros((len(rows), width, w0.shape[1]), dtype=np.float32)
    mask = np.zeros((len(rows), width), dtype=bool)
    for k, r in enumerate(rows):
        hid[k, :len(r["h"])] = r["h"]
        mask[k, :len(r["h"])] = True
    h = torch.from_numpy(hid)
    m = torch.from_numpy(mask)
    gold = torch.tensor([[r["i"], r["j"]] for r in rows])
    start = torch.from_numpy(w0.astype(np.float32))
    w = start.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([w], lr=1.0, max_iter=200, history_size=20,
                            line_search_fn="strong_wolfe")

    def loss_fn() -> Any:
        opt.zero_grad()
        logits = torch.einsum("nlh,kh->nlk", h, w).masked_fill(~m[..., None], -1e9)
        loss = (torch.nn.functional.cross_entropy(logits[..., 0], gold[:, 0])
                + torch.nn.functional.cross_entropy(logits[..., 1], gold[:, 1]))
        loss = loss + strength * ((w - start) ** 2).sum()
        loss.backward()
        return loss

    opt.step(loss_fn)
    out: Array = w.detach().numpy().astype(np.float32)
    return out


def with_logits(rows: list[dict[str, Any]], w: Array) -> list[dict[str, Any]]:
    """``rows`` in ``train.span_length.score``'s layout under head ``w``."""
    return [{"question": r["question"], "gold": r["gold"], "text": r["text"],
             "s": r["h"].astype(np.float32) @ w[0], "e": r["h"].astype(np.float32) @ w[1],
             "a": 0, "b": len(r["h"]), "starts": r["starts"], "ends": r["ends"],
             "clause": r["clause"]} for r in rows]


def cross_fitted(rows: list[dict[str, Any]], w0: Array, strength: float, folds: int = 2
                 ) -> list[dict[str, Any]]:
    """Each row's logits from a head fitted on the other folds: the costs fitted on
    these see the head as it behaves on questions it did not learn from."""
    out: list[dict[str, Any]] = [{}] * len(rows)
    for f in range(folds):
        rest = [r for k, r in enumerate(rows) if k % folds != f]
        w = fit_head(rest, w0, strength)
        for k in range(f, len(rows), folds):
            out[k] = with_logits([rows[k]], w)[0]
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--questions", type=int, default=0, help="fit questions (0: all)")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--log", default="train/work_headline/train.log")
    args = ap.parse_args(argv)
    log = logger(Path(args.log))
    fit_qas, val_qas = fit_and_validation(args.seed, args.questions)
    context_tokens = load_combiner().context_tokens
    meta = json.loads(MODEL_CARD.read_text("utf-8"))
    overrides, (w_head, _) = trained_parts(Path(meta["graph"]["weights"]), meta)
    w0 = w_head[:2].astype(np.float32)  # the reader's own head
    log(f"fit: {len(fit_qas)} questions; validation: {len(val_qas)} (held-out titles)")
    cache = Path(args.log).parent / f"states-{args.seed}-{len(fit_qas)}-{context_tokens}.pkl"
    if cache.is_file():  # a rerun only refits (delete it after changing the reader)
        fit_rows, val_rows = pickle.loads(cache.read_bytes())
    else:
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "states.onnx"
            # the shipped graph's layers at its precision, without a head
            write(build(E5File(), overrides, None, q4="packaged"), path, "q4-fp16")
            graph = Graph(path, 0)
            fit_rows = read_states(fit_qas, graph, context_tokens, log)
            val_rows = read_states(val_qas, graph, context_tokens, log)
        cache.write_bytes(pickle.dumps((fit_rows, val_rows)))
    log(f"gold inside its sentence: fit {len(fit_rows)}, validation {len(val_rows)}")
    max_tokens = shared_reader(0).max_answer_tokens

    def costs_and_figures(fit_read: list[dict[str, Any]], val_read: list[dict[str, Any]]
                          ) -> tuple[dict[str, tuple[float, float]], dict[str, Any]]:
        f_rows, v_rows = score(fit_read, max_tokens), score(val_read, max_tokens)
        costs = fit(f_rows, clauses=(IN_CLAUSE,))
        plain = {OTHER: (0.0, 0.0)}
        return costs, {"validation": apply(v_rows, costs), "validation_no_costs":
                       apply(v_rows, plain), "fit": apply(f_rows, costs)}

    variants: dict[str, dict[str, Any]] = {}
    costs, figures = costs_and_figures(with_logits(fit_rows, w0), with_logits(val_rows, w0))
    variants["reader_head"] = {"costs": costs, "figures": figures}
    log(f"reader_head: {figures}")
    for strength in STRENGTHS:
        name = f"headline_{strength:g}"
        started = time.time()
        costs, figures = costs_and_figures(cross_fitted(fit_rows, w0, strength),
                                           with_logits(val_rows, fit_head(fit_rows, w0, strength)))
        variants[name] = {"costs": costs, "figures": figures, "strength": strength}
        log(f"{name}: {figures} ({time.time() - started:.0f} s)")
    best = max(variants, key=lambda name: sum(variants[name]["figures"]["validation"].values()))
    log(f"best on validation (EM + F1): {best}")


if __name__ == "__main__":
    main()
