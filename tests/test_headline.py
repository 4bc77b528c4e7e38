"""The headline head experiment (train/headline.py, measured and not shipped): the gold's
tokens inside the window read, and the head's fit on made-up states."""

from __future__ import annotations

import numpy as np
import pytest

from train.headline import fit_head, gold_tokens


def test_the_gold_is_the_tokens_that_cover_it_inside_the_target() -> None:
    # tokens of "ab|cd|ef|gh" at characters 0-2, 2-4, 4-6, 6-8; question tokens -1
    starts, ends = [-1, 0, 2, 4, 6], [-1, 2, 4, 6, 8]
    qa = {"start": 2, "text": "cdef"}
    assert gold_tokens(qa, starts, ends, 1, 5) == (1, 2)  # relative to the target
    assert gold_tokens({"start": 3, "text": "de"}, starts, ends, 1, 5) == (1, 2)
    assert gold_tokens(qa, starts, ends, 1, 3) is None  # runs past the target's end
    assert gold_tokens({"start": 0, "text": "ab"}, starts, ends, 2, 5) is None


def _rows(n: int, rng: np.random.Generator) -> list[dict[str, object]]:
    """Made-up states where the gold's first token carries direction 0 and its last
    direction 1: a head can learn where answers start and end from them."""
    rows = []
    for _ in range(n):
        length = int(rng.integers(6, 20))
        h = rng.normal(0, 1, (length, 8)).astype(np.float32)
        i = int(rng.integers(0, length - 2))
        j = int(rng.integers(i, length))
        h[i, 0] += 4.0
        h[j, 1] += 4.0
        rows.append({"h": h.astype(np.float16), "i": i, "j": j})
    return rows


def test_the_head_learns_the_edges_and_a_strong_pull_keeps_the_old_head() -> None:
    pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    train, held = _rows(300, rng), _rows(100, rng)
    w0 = rng.normal(0, 0.1, (2, 8)).astype(np.float32)  # knows nothing

    def hits(w: np.ndarray) -> float:
        got = [(int(np.argmax(r["h"] @ w[0])), int(np.argmax(r["h"] @ w[1])))  # type: ignore[operator]
               for r in held]
        return float(np.mean([g == (r["i"], r["j"]) for g, r in zip(got, held, strict=True)]))

    free = fit_head(train, w0, 0.0)
    assert hits(free) > 0.8 > hits(w0) + 0.5
    pulled = fit_head(train, w0, 1e4)
    assert np.abs(pulled - w0).max() < np.abs(free - w0).max() / 50
