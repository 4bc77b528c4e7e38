"""Train a headline branch: the reader's top layers again, adapted to where CMRC 2018
puts an answer's edges, with their own start/end head.

    python -m train.headline_layer [--layers 2] [--rank 32] [--epochs 6] [--lr 1e-3]

The reader was trained on DRCD, whose answers are short; CMRC marks the whole answer
(「自治区“天山杯”优质工程」, 「在2004年9月」). Retraining the whole reader on CMRC taught it
that convention and cost it the answer sentence (bot/models/reader.md); a second linear
head on its last layer learned no more than the fitted length costs already give
(train/headline.py). This branch sits between the two: the states entering the reader's
top ``--layers`` layers are read once more through copies of those layers with low-rank
adapters (LoRA, rank ``--rank``: a few hundred KB, where a full copy of one layer would
be 3.5 MB against the 30 MB the weights may take) and a head of their own. The reader's
own layers, head, margins and every decision made on them stay as they are; the branch
only places a headline's edges.

Data (never CMRC trial or the seed test set):

* **trained on** CMRC 2018 train articles outside the held-out titles
  (``train.reader.split_titles``, seed 13), less a ``--cost-share`` of them: the window
  the guided answerer reads around the sentence holding the gold answer
  (``Reader.around_windows``, the combiner's ``context_tokens``); start and end are each
  a softmax over that sentence's tokens;
* the headline length costs (``train.span_length.fit``) are **fitted** for each head on
  the ``--cost-share`` kept out of training, so that they see the branch as it behaves
  on questions it did not learn from;
* **chosen on** the held-out titles' answerable questions (span level, CMRC's EM + F1):
  each epoch of the branch against the reader's own head with its own costs (what ships
  today);
* **measured** through the whole answer path on CMRC trial and the project's own sets
  (docs/benchmarks.md), which play no part here.

Writes ``--work``/result.json (every figure), ``--work``/branch.npz (the chosen epoch's
adapters merged into layer weights, fp16, for ``train.graph``) and ``--work``/costs.json.
States are cached in ``--work`` (delete them after changing the reader).
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bot.answerers.guided import load_combiner
from bot.encoder import E5File, Graph
from bot.reader import MODEL_CARD, clause_ends, shared_reader
from bot.span_length import OTHER, SPANS_VERSION, fitted_bucket
from train.graph import build, trained_parts, write
from train.headline import gold_windows
from train.logs import logger
from train.span_length import (
    IN_CLAUSE,
    PAIRS,
    VALUES,
    apply,
    fit,
    fit_and_validation,
    score,
)

Array = np.ndarray[Any, Any]

MAX_LAYERS = 4  # the most layers a branch may take (--layers)
BATCH = 32  # windows per optimiser step
READ_BATCH = 16  # windows per graph run while caching states
# AdamW for the adapters and the head: the top of LoRA's usual range (1e-4 to 1e-3)
# for a small data set. A first run at 5e-4 (rank 16, 3 epochs) was still learning at
# its end; 1e-3 with rank 32 and 6 epochs was chosen on validation
# (bot/models/reader.md).
LEARNING_RATE = 1e-3
WARMUP = 0.06  # share of the steps with a linear warm-up, as train/reader.py


class _LowerLayers:
    """An ``E5File`` seen as its first ``layers`` layers (``train.graph.build``)."""

    def __init__(self, file: E5File, layers: int) -> None:
        self._file = file
        self.layers = layers

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


def read_states(qas: list[dict[str, Any]], graph: Graph, context_tokens: int, log: Any
                ) -> list[dict[str, Any]]:
    """Each question's window: the states ``graph`` outputs (those entering the branch's
    layers; fp16, every token), the target sentence's token range, the gold's tokens in
    it, and what scoring a span needs."""
    return [{"question": qa["question"], "gold": qa["text"], "text": qa["context"],
             "h": h[:len(w.ids)].astype(np.float16), "a": a, "b": b,
             "i": gold[0] + a, "j": gold[1] + a, "starts": w.starts, "ends": w.ends,
             "clause": clause_ends(qa["context"], w)}
            for qa, w, a, b, gold, h in gold_windows(qas, graph, context_tokens, log,
                                                     READ_BATCH)]


def branch_model(overrides: dict[int, dict[str, Array]], head: tuple[Array, Array],
                 file: E5File, layers: int, rank: int, cached: int | None = None) -> Any:
    """The torch branch: the frozen reader layers between the states given (those
    entering the top ``cached`` layers, ``layers`` by default) and the branch, then
    ``layers`` copies of the reader's top layers with rank-``rank`` adapters on every
    matrix (layer norms trained too), then a head initialised from the reader's."""
    import torch
    from torch import nn

    from train.reader import Layer, attention_bias

    top = int(file.layers)
    first_cached = top - (cached or layers)

    class Adapted(nn.Module):
        def __init__(self, lin: nn.Linear) -> None:
            super().__init__()
            self.lin = lin
            self.a = nn.Parameter(torch.randn(rank, lin.in_features) / math.sqrt(lin.in_features))
            self.b = nn.Parameter(torch.zeros(lin.out_features, rank))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x) + (x @ self.a.T) @ self.b.T

        def factors(self) -> tuple[Array, Array]:
            return self.a.detach().numpy(), self.b.detach().numpy()

    class Branch(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.frozen = nn.ModuleList(Layer(overrides[i], file.heads, file.eps)
                                        for i in range(first_cached, top - layers))
            self.frozen.requires_grad_(False)
            self.layers = nn.ModuleList(Layer(overrides[i], file.heads, file.eps)
                                        for i in range(top - layers, top))
            self.layers.requires_grad_(False)
            for layer in self.layers:
                for name in ("q", "k", "v", "ao", "fi", "fo"):
                    setattr(layer, name, Adapted(getattr(layer, name)))
                for ln in (layer.aln, layer.oln):
                    ln.requires_grad_(True)
            self.head = nn.Linear(file.hidden, 2)
            self.head.weight.data = torch.tensor(head[0][:2].astype(np.float32))
            self.head.bias.data = torch.tensor(head[1][:2].astype(np.float32))

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            bias = attention_bias(mask)
            with torch.no_grad():
                for layer in self.frozen:
                    x = layer(x, bias)
            for layer in self.layers:
                x = layer(x, bias)
            out: torch.Tensor = self.head(x)
            return out

        def export(self) -> dict[str, Array]:
            """The branch as ``train.graph.build`` reads it: per layer ``b{i}.`` the
            adapters' two factors of each matrix (the reader's own layer ``i`` holds the
            matrix itself) and the layer norms; ``bhead.`` its head."""
            out: dict[str, Array] = {}
            for k, layer in enumerate(self.layers):
                p = f"b{top - layers + k}."
                for name in ("q", "k", "v", "ao", "fi", "fo"):
                    out[p + name + ".a"], out[p + name + ".b"] = getattr(layer, name).factors()
                for name in ("aln", "oln"):
                    ln = getattr(layer, name)
                    out[p + name + ".w"] = ln.weight.detach().numpy()
                    out[p + name + ".b"] = ln.bias.detach().numpy()
            out["bhead.w"] = self.head.weight.detach().numpy()
            out["bhead.b"] = self.head.bias.detach().numpy()
            return out

    return Branch()


def load_branch(model: Any, arrays: dict[str, Array]) -> None:
    """Put a ``branch.npz``'s factors, norms and head into ``model`` (``branch_model``)."""
    import torch

    top = min(int(k.split(".")[0][1:]) for k in arrays if not k.startswith("bhead"))
    for k, layer in enumerate(model.layers):
        p = f"b{top + k}."
        for name in ("q", "k", "v", "ao", "fi", "fo"):
            adapted = getattr(layer, name)
            adapted.a.data = torch.tensor(arrays[p + name + ".a"].astype(np.float32))
            adapted.b.data = torch.tensor(arrays[p + name + ".b"].astype(np.float32))
        for name in ("aln", "oln"):
            norm = getattr(layer, name)
            norm.weight.data = torch.tensor(arrays[p + name + ".w"].astype(np.float32))
            norm.bias.data = torch.tensor(arrays[p + name + ".b"].astype(np.float32))
    model.head.weight.data = torch.tensor(arrays["bhead.w"].astype(np.float32))
    model.head.bias.data = torch.tensor(arrays["bhead.b"].astype(np.float32))


def batches(rows: list[dict[str, Any]], size: int) -> Any:
    """(states [B, L, H], mask [B, L], target mask [B, L], gold start, gold end)."""
    import torch

    for k in range(0, len(rows), size):
        part = rows[k:k + size]
        width = max(len(r["h"]) for r in part)
        h = np.zeros((len(part), width, part[0]["h"].shape[1]), dtype=np.float32)
        mask = np.zeros((len(part), width), dtype=np.float32)
        target = np.zeros((len(part), width), dtype=bool)
        for n, r in enumerate(part):
            h[n, :len(r["h"])] = r["h"]
            mask[n, :len(r["h"])] = 1.0
            target[n, r["a"]:r["b"]] = True
        yield (part, torch.from_numpy(h), torch.from_numpy(mask), torch.from_numpy(target),
               torch.tensor([r["i"] for r in part]), torch.tensor([r["j"] for r in part]))


def logits_of(model: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` in ``train.span_length.score``'s layout under the branch."""
    import torch

    out = []
    model.eval()
    with torch.no_grad():
        for part, h, mask, _, _, _ in batches(rows, 64):
            logits = model(h, mask).numpy()
            for r, lg in zip(part, logits, strict=True):
                n = len(r["h"])
                out.append(reader_layout(r, lg[:n, 0], lg[:n, 1]))
    return out


def reader_layout(r: dict[str, Any], s: Array, e: Array) -> dict[str, Any]:
    return {"question": r["question"], "gold": r["gold"], "text": r["text"], "s": s,
            "e": e, "a": r["a"], "b": r["b"], "starts": r["starts"], "ends": r["ends"],
            "clause": r["clause"]}


def figures(cost_read: list[dict[str, Any]], val_read: list[dict[str, Any]],
            max_tokens: int) -> tuple[dict[str, tuple[float, float]], dict[str, Any]]:
    """Costs fitted on ``cost_read`` and the validation EM/F1 with and without them."""
    c_rows, v_rows = score(cost_read, max_tokens), score(val_read, max_tokens)
    costs = fit(c_rows, clauses=(IN_CLAUSE,))
    return costs, {"validation": apply(v_rows, costs),
                   "validation_no_costs": apply(v_rows, {OTHER: (0.0, 0.0)}),
                   "cost_fold": apply(c_rows, costs)}


def per_bucket(reader: tuple[list[dict[str, Any]], list[dict[str, Any]]],
               branch: tuple[list[dict[str, Any]], list[dict[str, Any]]], max_tokens: int
               ) -> tuple[dict[str, tuple[float, float]], list[str], dict[str, Any]]:
    """Which head places each bucket's headlines, and under which costs: (cost fold,
    validation) logits of the reader's head and of the branch. Each head's in-clause
    costs are fitted on the cost fold (``fit``); each bucket (as the costs group them,
    ``fitted_bucket``) takes the best of three on the cost fold by mean EM + F1 (the
    earlier on a tie): the reader's head with its costs, the branch with its costs, the
    branch with none (its own edges, which may run over a comma as CMRC's answers do).
    The value buckets keep the reader's edges whatever the fold says
    (``train.span_length.VALUES``: the product rule that a value's headline is its
    number and unit, set before either fit). The validation figures are measured with
    those choices. Returns the chosen costs, the branch's buckets, the figures."""
    rc, rv = (score(x, max_tokens) for x in reader)
    bc, bv = (score(x, max_tokens) for x in branch)
    r_costs, b_costs = fit(rc, clauses=(IN_CLAUSE,)), fit(bc, clauses=(IN_CLAUSE,))
    plain = {name: (0.0, 0.0) for name in b_costs}
    index = {pair: k for k, pair in enumerate(PAIRS)}

    def merit(rows: list[dict[str, Any]], costs: dict[str, tuple[float, float]]) -> float:
        return sum(r["em"][index[tuple(costs[fitted_bucket(r["bucket"], costs)])]]
                   + r["f1"][index[tuple(costs[fitted_bucket(r["bucket"], costs)])]]
                   for r in rows)

    chosen: dict[str, tuple[float, float]] = {}
    branch_buckets = []
    for name in r_costs:
        r_rows = [r for r in rc if fitted_bucket(r["bucket"], r_costs) == name]
        b_rows = [r for r in bc if fitted_bucket(r["bucket"], b_costs) == name]
        options = [(merit(r_rows, r_costs), "reader", r_costs[name])]
        if name not in VALUES:
            options += [(merit(b_rows, b_costs), "branch", b_costs[name]),
                        (merit(b_rows, plain), "branch", (0.0, 0.0))]
        best = max(options, key=lambda o: o[0])  # the first of equals
        chosen[name] = (float(best[2][0]), float(best[2][1]))
        if best[1] == "branch":
            branch_buckets.append(name)

    def measured(r_rows: list[dict[str, Any]], b_rows: list[dict[str, Any]]) -> dict[str, float]:
        picks = [(b if fitted_bucket(r["bucket"], chosen) in branch_buckets else r)
                 for r, b in zip(r_rows, b_rows, strict=True)]
        return apply(picks, chosen)

    return chosen, sorted(branch_buckets), {"validation": measured(rv, bv),
                                            "cost_fold": measured(rc, bc)}


def main(argv: list[str] | None = None) -> None:
    import torch
    import torch.nn.functional as F

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, default=2, choices=range(1, MAX_LAYERS + 1))
    ap.add_argument("--rank", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--lr", type=float, default=LEARNING_RATE)
    ap.add_argument("--cost-share", type=float, default=0.15,
                    help="share of the fit questions kept out of training to fit the costs")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--work", type=Path, default=Path("train/work_branch"))
    ap.add_argument("--choose-only", action="store_true",
                    help="do not train: redo the per-bucket choice for WORK/branch.npz")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    log = logger(args.work / "train.log")
    torch.manual_seed(args.seed)
    fit_qas, val_qas = fit_and_validation(args.seed)
    context_tokens = load_combiner().context_tokens
    meta = json.loads(MODEL_CARD.read_text("utf-8"))
    overrides, head = trained_parts(Path(meta["graph"]["weights"]), meta)
    file = E5File()
    top = int(file.layers)
    cache = args.work / f"states-{args.seed}-{len(fit_qas)}-{context_tokens}-{args.layers}.pkl"
    if cache.is_file():
        fit_rows, val_rows = pickle.loads(cache.read_bytes())
    else:
        log(f"reading states: fit {len(fit_qas)}, validation {len(val_qas)}")
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "lower.onnx"
            lower = {i: w for i, w in overrides.items() if i < top - args.layers}
            write(build(_LowerLayers(file, top - args.layers), lower, None, q4="packaged"),
                  path, "q4-fp16")
            graph = Graph(path, 0)
            fit_rows = read_states(fit_qas, graph, context_tokens, log)
            val_rows = read_states(val_qas, graph, context_tokens, log)
        cache.write_bytes(pickle.dumps((fit_rows, val_rows), protocol=4))
    random.Random(args.seed).shuffle(fit_rows)
    n_cost = int(len(fit_rows) * args.cost_share)
    cost_rows, train_rows = fit_rows[:n_cost], fit_rows[n_cost:]
    log(f"gold inside its sentence: train {len(train_rows)}, cost fold {len(cost_rows)}, "
        f"validation {len(val_rows)}")
    max_tokens = shared_reader(0).max_answer_tokens
    result: dict[str, Any] = {"layers": args.layers, "rank": args.rank, "lr": args.lr,
                              "train": len(train_rows), "cost_fold": len(cost_rows),
                              "validation": len(val_rows), "epochs": {}}

    # the reader's own head on the same questions (what ships), costs refitted alike
    reader_branch = branch_model(overrides, head, file, args.layers, 1)
    for layer in reader_branch.layers:  # a zero adapter: the reader itself
        for name in ("q", "k", "v", "ao", "fi", "fo"):
            getattr(layer, name).b.data.zero_()
    reader_read = logits_of(reader_branch, cost_rows), logits_of(reader_branch, val_rows)
    costs, figs = figures(*reader_read, max_tokens)
    result["reader_head"] = {"costs": costs, "figures": figs}
    log(f"reader head: {figs}")
    command = " ".join(["python -m train.headline_layer",
                        *(sys.argv[1:] if argv is None else argv)])
    if args.choose_only:
        result = json.loads((args.work / "result.json").read_text("utf-8"))
        choose(args, result, reader_read, overrides, head, file, cost_rows, val_rows,
               max_tokens, log, command)
        return

    model = branch_model(overrides, head, file, args.layers, args.rank)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    steps = args.epochs * math.ceil(len(train_rows) / BATCH)
    warm = max(1, int(steps * WARMUP))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (steps - s) / max(1, steps - warm)))
    best_name, best_score = "reader_head", sum(figs["validation"].values())
    step = 0
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = list(train_rows)
        random.Random(args.seed + epoch).shuffle(order)
        # windows of like length together: less padding per step
        chunks = [sorted(order[k:k + BATCH * 20], key=lambda r: len(r["h"]))
                  for k in range(0, len(order), BATCH * 20)]
        started, total = time.time(), 0.0
        parts = [p for chunk in chunks for p in batches(chunk, BATCH)]
        random.Random(args.seed * 7 + epoch).shuffle(parts)
        for n, (_, h, mask, target, gi, gj) in enumerate(parts, 1):
            logits = model(h, mask).masked_fill(~target[..., None], -1e4)
            loss = F.cross_entropy(logits[..., 0], gi) + F.cross_entropy(logits[..., 1], gj)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            step += 1
            total += float(loss)
            if n % 50 == 0:
                log(f"epoch {epoch} step {n}/{len(parts)} loss {total / n:.3f} "
                    f"({time.time() - started:.0f} s)")
        costs, figs = figures(logits_of(model, cost_rows), logits_of(model, val_rows), max_tokens)
        name = f"epoch_{epoch}"
        result["epochs"][name] = {"costs": costs, "figures": figs,
                                  "loss": total / max(1, len(parts)),
                                  "seconds": round(time.time() - started)}
        log(f"{name}: {figs} ({time.time() - started:.0f} s)")
        if sum(figs["validation"].values()) > best_score:
            best_name, best_score = name, sum(figs["validation"].values())
            arrays = {k: v.astype(np.float16) for k, v in model.export().items()}
            np.savez(args.work / "branch.npz", **arrays)
            (args.work / "costs.json").write_text(json.dumps(
                {k: list(v) for k, v in costs.items()}, indent=2) + "\n", "utf-8")
        (args.work / "result.json").write_text(
            json.dumps({**result, "chosen": best_name}, indent=2) + "\n", "utf-8")
    log(f"chosen on validation (EM + F1): {best_name}")
    result["chosen"] = best_name
    if best_name != "reader_head":
        choose(args, result, reader_read, overrides, head, file, cost_rows, val_rows,
               max_tokens, log, command)


def choose(args: Any, result: dict[str, Any], reader_read: tuple[list[dict[str, Any]], ...],
           overrides: dict[int, dict[str, Array]], head: tuple[Array, Array], file: E5File,
           cost_rows: list[dict[str, Any]], val_rows: list[dict[str, Any]], max_tokens: int,
           log: Any, command: str) -> None:
    """The chosen epoch's branch against the reader's head, bucket by bucket
    (``per_bucket``); writes result.json and spans.json."""
    import torch

    model = branch_model(overrides, head, file, args.layers, args.rank)
    with np.load(args.work / "branch.npz") as data:
        load_branch(model, {k: data[k] for k in data.files})
    with torch.no_grad():
        branch_read = logits_of(model, cost_rows), logits_of(model, val_rows)
    costs, buckets, figs = per_bucket((reader_read[0], reader_read[1]), branch_read,
                                      max_tokens)
    result["per_bucket"] = {"costs": costs, "branch_buckets": buckets, "figures": figs}
    log(f"per bucket: the branch for {buckets}: {figs}")
    (args.work / "result.json").write_text(json.dumps(result, indent=2) + "\n", "utf-8")
    write_spans(args.work, command)
    log(f"wrote {args.work / 'spans.json'}")


def write_spans(work: Path, command: str) -> None:
    """``work``/spans.json: the per-bucket choice's costs in bot/models/spans.json's
    format; ``headline`` names the buckets whose edges the branch places."""
    result = json.loads((work / "result.json").read_text("utf-8"))
    chosen = result["per_bucket"]
    costs = chosen["costs"]
    out = {
        "version": SPANS_VERSION,
        "headline": chosen["branch_buckets"],
        "bias": {k: b for k, (b, _) in costs.items()},
        "clause_cost": {k: c for k, (_, c) in costs.items()},
        "provenance": {
            "fitted_on": f"{result['cost_fold']} questions of CMRC 2018 train articles "
                         "outside the held-out titles that the headline branch did not "
                         "train on (train.headline_layer's cost fold, seed 13): each "
                         "head's costs, and which head each bucket takes",
            "branch_trained_on": f"{result['train']} other questions of those articles",
            "chosen_on": f"{result['validation']} answerable questions of the held-out "
                         "titles whose gold lies in its sentence: the branch's epoch by "
                         "EM + F1 against the reader's own head with its own costs",
            "window": "the sentence holding the gold answer, the combiner's context_tokens",
            "figures": {"reader_head": result["reader_head"]["figures"],
                        result["chosen"]: result["epochs"][result["chosen"]]["figures"],
                        "per_bucket": chosen["figures"]},
            "command": command,
        },
    }
    (work / "spans.json").write_text(json.dumps(out, ensure_ascii=False, indent=2) + "\n",
                                     "utf-8")


if __name__ == "__main__":
    main()
