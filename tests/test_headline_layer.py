"""The headline branch (train/headline_layer.py): what torch trains is what the compiled
graph's two extra channels compute, the reader's own channels stay as they were, and a
branch whose adapters are zero is the reader itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_reader import TinySource, _toy_examples

from bot.reader import Reader, pad


def _graphs(tmp_path: Path, branch: dict[str, np.ndarray] | None,
            head: tuple[np.ndarray, np.ndarray]) -> Reader:
    import onnx

    from train.graph import build

    source = TinySource()
    path = tmp_path / f"reader-{'branch' if branch else 'plain'}.onnx"
    onnx.save(build(source, {}, head, branch=branch), str(path))
    return Reader(path, file=source, meta={"window_tokens": 32})  # type: ignore[arg-type]


@pytest.mark.parametrize("layers", [1, 2])
def test_the_graphs_branch_computes_what_torch_trained(tmp_path: Path, layers: int) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    import torch

    from train.headline_layer import branch_model
    from train.reader import Lower

    source = TinySource()
    rng = np.random.default_rng(3)
    head = (rng.normal(0, 0.3, (2, source.hidden)).astype(np.float32), np.zeros(2, np.float32))
    overrides = {i: source.layer(i) for i in range(source.layers)}
    model = branch_model(overrides, head, source, layers, 4, 2)  # type: ignore[arg-type]
    with torch.no_grad():  # a trained branch: adapters, norms and head moved
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.2)
    plain = _graphs(tmp_path, None, head)
    both = _graphs(tmp_path, model.export(), head)
    assert not plain.has_headline and both.has_headline

    batch = [e.window for e in _toy_examples(6, 4)]
    out = both._run(batch)
    ids, mask = pad([w.ids for w in batch], 1)
    real = mask > 0
    with torch.no_grad():  # the cached states enter below the branch's top layers
        states = Lower(source, source.layers - 2)(ids, mask)  # type: ignore[arg-type]
        theirs = model(states, torch.tensor(mask)).numpy()
    assert np.allclose(out[..., 2:][real], theirs[real], atol=1e-3)
    # the reader's own channels are those of the graph without a branch
    assert np.allclose(out[..., :2][real], plain._run(batch)[real], atol=1e-4)
    assert not np.allclose(out[..., 2:][real], out[..., :2][real], atol=1e-2)


def test_a_branch_with_zero_adapters_is_the_reader(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from train.headline_layer import branch_model

    source = TinySource()
    rng = np.random.default_rng(4)
    head = (rng.normal(0, 0.3, (2, source.hidden)).astype(np.float32), np.zeros(2, np.float32))
    overrides = {i: source.layer(i) for i in range(source.layers)}
    model = branch_model(overrides, head, source, 2, 4)  # type: ignore[arg-type]
    reader = _graphs(tmp_path, model.export(), head)  # b factors start at zero
    batch = [e.window for e in _toy_examples(4, 5)]
    out = reader._run(batch)
    real = pad([w.ids for w in batch], 1)[1] > 0
    assert np.allclose(out[..., 2:][real], out[..., :2][real], atol=1e-4)
