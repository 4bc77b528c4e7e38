"""The config resolver: documented precedence, QABOT_HOME, default.toml complete."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest
from conftest import ROOT

from bot.config import Settings, known_keys, load_settings, parse_assignment
from bot.errors import ConfigError


def write_root(tmp_path: Path, default: str, local: str | None = None) -> Path:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "default.toml").write_text(default, "utf-8")
    if local is not None:
        (tmp_path / "config" / "local.toml").write_text(local, "utf-8")
    return tmp_path


def test_precedence_cli_over_env_over_toml_over_default(tmp_path: Path) -> None:
    root = write_root(tmp_path, "[retrieval]\nk = 5\nfetch_k = 30\n[answer]\nmax_sentences = 3\n",
                      local="[retrieval]\nfetch_k = 25\n")
    extra = tmp_path / "extra.toml"
    extra.write_text("[retrieval]\nrrf_k = 10\n", "utf-8")
    env = {"QABOT_RETRIEVAL_K": "7", "QABOT_RETRIEVAL_RRF_K": "11"}
    s = load_settings(root=root, env=env, config_file=extra, cli={"retrieval.k": "9"})
    assert s.retrieval.k == 9  # CLI beats env beats toml
    assert s.retrieval.rrf_k == 11  # env beats the --config file
    assert s.retrieval.fetch_k == 25  # local.toml beats default.toml
    assert s.answer.max_sentences == 3  # toml beats built-in
    assert s.chunking.size == Settings().chunking.size  # built-in default


def test_qabot_home_moves_all_state(tmp_path: Path) -> None:
    root = write_root(tmp_path, "")
    s = load_settings(root=root, env={"QABOT_HOME": str(tmp_path / "elsewhere")})
    assert s.home == tmp_path / "elsewhere"
    for path in (s.sessions_path, s.cache_dir):
        assert s.home in path.parents
    relative = load_settings(root=root, env={})
    assert relative.home == root / "index" and relative.docs_dir == root / "seeds"


def test_default_toml_lists_every_setting_with_builtin_values() -> None:
    data = tomllib.loads((ROOT / "config" / "default.toml").read_text("utf-8"))
    flat = {f"{sec}.{key}": value for sec, values in data.items() for key, value in values.items()}
    assert sorted(flat) == sorted(known_keys())
    builtin = Settings()
    for dotted, value in flat.items():
        section, key = dotted.split(".")
        assert getattr(getattr(builtin, section), key) == value, dotted
    text = (ROOT / "config" / "default.toml").read_text("utf-8").splitlines()
    for i, line in enumerate(text):  # every key has a comment right above it
        if "=" in line and not line.startswith("#"):
            assert text[i - 1].startswith("#"), line


@pytest.mark.parametrize(("env", "message"), [
    ({"QABOT_RETRIEVAL_K": "many"}, "retrieval.k .* must be int"),
    ({"QABOT_RETRIEVAL_BM25": "maybe"}, "retrieval.bm25 .* must be bool"),
    ({"QABOT_CHUNKING_OVERLAP": "500"}, "chunking.overlap must be"),
])
def test_bad_values_are_named_with_their_source(tmp_path: Path, env: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(root=write_root(tmp_path, ""), env=env)


def test_a_misspelt_environment_variable_is_an_error_not_ignored(tmp_path: Path) -> None:
    root = write_root(tmp_path, "")
    # ignored, this would leave a private bot open to everyone
    with pytest.raises(ConfigError, match=r"QABOT_TELEGRAM_ALLOWED_USER: no such setting\. "
                                          r"Did you mean QABOT_TELEGRAM_ALLOWED_USERS"):
        load_settings(root=root, env={"QABOT_TELEGRAM_ALLOWED_USER": "111"})
    ok = load_settings(root=root, env={"QABOT_TELEGRAM_ALLOWED_USERS": "111",
                                       "QABOT_HOME": "h", "OTHER_TOOL_X": "1"})
    assert ok.telegram.allowed_users == "111" and ok.home == (root / "h")


def test_an_empty_home_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"paths\.home is empty"):
        load_settings(root=write_root(tmp_path, ""), env={}, cli={"paths.home": "  "})


def test_an_empty_docs_folder_means_none_and_asking_for_it_says_how_to_name_one(
        tmp_path: Path) -> None:
    settings = load_settings(root=write_root(tmp_path, ""), env={}, cli={"paths.docs": " "})
    with pytest.raises(ConfigError, match=r"qabot ingest PATH"):
        _ = settings.docs_dir


def test_a_config_file_that_is_not_utf8_is_one_clear_error(tmp_path: Path) -> None:
    root = write_root(tmp_path, "")
    (root / "config" / "local.toml").write_bytes("[retrieval]\n# 注释\nk = 3\n".encode("gbk"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_settings(root=root, env={})


def test_unknown_keys_and_broken_files_are_errors(tmp_path: Path) -> None:
    root = write_root(tmp_path, "[retrieval]\nkk = 1\n")
    with pytest.raises(ConfigError, match=r"Unknown setting 'retrieval\.kk'"):
        load_settings(root=root, env={})
    (root / "config" / "default.toml").write_text("[retrieval\n", "utf-8")
    with pytest.raises(ConfigError, match="Cannot read config file"):
        load_settings(root=root, env={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(root=tmp_path, env={"QABOT_CONFIG": str(tmp_path / "nope.toml")})
    with pytest.raises(ConfigError, match=r"section\.key=value"):
        parse_assignment("k=3")


def test_settings_are_immutable_and_replace_types_values() -> None:
    s = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.retrieval.k = 3  # type: ignore[misc]
    assert s.replace({"retrieval.k": "6", "retrieval.dense": "false"}).retrieval.k == 6
