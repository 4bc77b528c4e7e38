"""The rule answerer's sentence-score weights: hand-set or learned, and the fit that
learns them (train/scorer.py) on made-up candidate groups."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bot.config import ConfigError, load_settings
from bot.errors import ScorerError
from bot.features import HAND_WEIGHTS, SCORE_FEATURES, SCORER_PATH, score_weights
from train.scorer import fit, loss_and_grad, top1


def test_hand_weights_and_the_committed_learned_weights_cover_every_feature() -> None:
    assert score_weights("hand") == HAND_WEIGHTS
    learned = score_weights("learned")
    assert set(learned) == set(SCORE_FEATURES)
    card = json.loads(SCORER_PATH.read_text("utf-8"))
    # the file says what fitted and what chose the weights, and never names a test set
    assert "DRCD" in card["fitted_on"] and "DRCD" in card["chosen_on"]
    assert "CMRC" not in json.dumps(card) and "seed_testset" not in json.dumps(card)


@pytest.mark.parametrize("content", [None, "{not json", '{"weights": {"lexical": 1}}'])
def test_missing_or_damaged_learned_weights_are_a_clear_error(tmp_path: Path,
                                                              content: str | None) -> None:
    path = tmp_path / "scorer.json"
    if content is not None:
        path.write_text(content, "utf-8")
    with pytest.raises(ScorerError, match=r"answer\.scorer = hand"):
        score_weights("learned", path)


def test_an_unknown_scorer_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"answer\.scorer must be hand or learned"):
        load_settings(root=tmp_path, env={}, cli={"answer.scorer": "magic"})


def _groups(rng: np.random.Generator, n: int, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Questions whose right sentence is the one with the largest feature 1 (feature 0
    is noise that the hand-set start favours)."""
    out = []
    for _ in range(n):
        x = rng.normal(size=(8, k))
        y = np.zeros(8, dtype=bool)
        y[int(np.argmax(x[:, 1]))] = True
        out.append((x, y))
    return out


def test_the_gradient_is_the_loss_derivative() -> None:
    rng = np.random.default_rng(0)
    groups = _groups(rng, 20, 4)
    w = rng.normal(size=4)
    _, grad = loss_and_grad(w, groups, 0.1)
    eps = 1e-6
    numeric = [(loss_and_grad(w + eps * e, groups, 0.1)[0]
                - loss_and_grad(w - eps * e, groups, 0.1)[0]) / (2 * eps) for e in np.eye(4)]
    assert np.allclose(grad, numeric, atol=1e-5)


def test_the_fit_learns_which_feature_marks_the_answer_and_generalises() -> None:
    rng = np.random.default_rng(1)
    train, held_out = _groups(rng, 200, 4), _groups(rng, 200, 4)
    start = np.array([1.0, 0.0, 0.0, 0.0])  # a wrong guess to start from
    assert top1(start, held_out, len(held_out)) < 0.4
    w = fit(train, 1e-3, start)
    assert int(np.argmax(np.abs(w))) == 1
    assert top1(w, held_out, len(held_out)) > 0.95
    # a question without any candidate holding its answer counts as a miss
    assert top1(w, held_out, 2 * len(held_out)) == pytest.approx(
        top1(w, held_out, len(held_out)) / 2)
