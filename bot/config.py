"""Settings: one resolver, one object passed down, nothing global.

Precedence, highest first:

1. CLI flags (``--set section.key=value`` and the named flags such as ``--embedder``)
2. environment variables: ``QABOT_<SECTION>_<KEY>`` (e.g. ``QABOT_RETRIEVAL_K=6``);
   ``QABOT_HOME`` is short for ``QABOT_PATHS_HOME``, ``TELEGRAM_BASE_URL`` for
   ``QABOT_TELEGRAM_BASE_URL``
3. TOML files, later ones winning: ``config/default.toml``, ``config/local.toml``
   (git-ignored, for your own overrides), then the file named by ``--config`` or
   ``QABOT_CONFIG``
4. the built-in defaults below (``config/default.toml`` repeats them with comments)

Relative paths in settings are resolved against the project root (the folder that
holds ``config/default.toml``), so the bot behaves the same from any working directory.

Installed without a checkout (bot/resources.py), the TOML files are the packaged
defaults and the user's config file (``~/.config/qabot/config.toml`` on Linux), state
defaults to the user's data folder, no documents folder is preset (``qabot ingest
PATH`` names it), and relative paths resolve against the working directory.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bot import resources
from bot.errors import ConfigError

# The settings themselves (sections, defaults, where each default came from) are in
# bot/settings.py; callers import them from here, with the resolver.
from bot.settings import GUIDED_EMBEDDER as GUIDED_EMBEDDER
from bot.settings import AnswerSettings as AnswerSettings
from bot.settings import ChunkingSettings as ChunkingSettings
from bot.settings import EmbeddingSettings as EmbeddingSettings
from bot.settings import LLMSettings as LLMSettings
from bot.settings import PathsSettings as PathsSettings
from bot.settings import RetrievalSettings as RetrievalSettings
from bot.settings import SessionSettings as SessionSettings
from bot.settings import Settings as Settings
from bot.settings import StoreSettings as StoreSettings
from bot.settings import TelegramSettings as TelegramSettings
from bot.settings import answerer_kind as answerer_kind

log = logging.getLogger(__name__)

ENV_PREFIX = "QABOT_"
# Short names people actually type; each maps onto a section.key.
ENV_ALIASES = {"QABOT_HOME": "paths.home", "TELEGRAM_BASE_URL": "telegram.base_url"}
# old names still read (in a TOML file, QABOT_* or --set), each with a warning
RENAMED = {"answer.reader": "answer.answerer"}
ENV_OTHER = frozenset({"QABOT_CONFIG"})  # QABOT_ variables that are not settings


def project_root() -> Path:
    """The checkout this package runs from, or the working directory when installed."""
    return resources.checkout_root() or Path.cwd()


def load_settings(
    *,
    config_file: str | os.PathLike[str] | None = None,
    cli: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    root: Path | None = None,
) -> Settings:
    """Resolve settings from defaults, TOML files, environment and CLI flags."""
    env = os.environ if env is None else env
    root = root or resources.checkout_root()
    if root is not None:
        settings = Settings(root=root)
        files = [root / "config" / "default.toml", root / "config" / "local.toml"]
    else:  # installed: packaged defaults, state in the user's data folder
        settings = Settings(root=Path.cwd(), checkout=False)
        packaged = _flatten(_parse_toml(resources.packaged_defaults(), "packaged defaults"))
        packaged.update({"paths.home": str(resources.user_data_dir()), "paths.docs": ""})
        settings = apply_overrides(settings, packaged, source="default")
        files = [resources.user_config_file()]
    explicit = config_file or env.get("QABOT_CONFIG")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"Config file {path} does not exist. Fix --config or QABOT_CONFIG.")
        files.append(path)
    for path in files:
        if path.is_file():
            settings = apply_overrides(settings, _flatten(_read_toml(path)), source=str(path))

    for key, (variable, value) in _from_env(env).items():
        settings = apply_overrides(settings, {key: value}, source=f"environment ({variable})")
    if cli:
        settings = apply_overrides(settings, {k: v for k, v in cli.items() if v is not None},
                          "command line")
    _validate(settings)
    return settings


# Settings' fields that are not [sections] of settings
_NOT_SECTIONS = frozenset({"root", "origins", "checkout"})


def parse_assignment(text: str) -> tuple[str, str]:
    """Split a ``section.key=value`` CLI assignment."""
    key, sep, value = text.partition("=")
    if not sep or "." not in key:
        raise ConfigError(f"--set expects section.key=value, got {text!r} (e.g. retrieval.k=6).")
    return key.strip(), value.strip()


def known_keys() -> list[str]:
    """Every ``section.key`` the resolver accepts."""
    return [
        f"{section.name}.{item.name}"
        for section in dataclasses.fields(Settings)
        if section.name not in _NOT_SECTIONS
        for item in dataclasses.fields(getattr(Settings(), section.name))
    ]


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"Cannot read config file {path}: {exc}. Fix or remove it.") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"Config file {path} is not UTF-8 text (byte {exc.start}). Save it "
                          "as UTF-8.") from exc
    return _parse_toml(text, str(path))


def _parse_toml(text: str, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Cannot read config file {where}: {exc}. Fix or remove it.") from exc


def _flatten(data: Mapping[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for section, values in data.items():
        if not isinstance(values, Mapping):
            raise ConfigError(f"Config key {section!r} must be a [section] table.")
        for key, value in values.items():
            flat[f"{section}.{key}"] = value
    return flat


def _from_env(env: Mapping[str, str]) -> dict[str, tuple[str, Any]]:
    """Settings from ``QABOT_*`` variables. An unknown one is an error, not ignored: a
    misspelt ``QABOT_TELEGRAM_ALLOWED_USER`` would otherwise leave the bot open."""
    keys = {k.replace(".", "_").upper(): k for k in [*known_keys(), *RENAMED]}
    found: dict[str, tuple[str, Any]] = {}  # setting -> (variable, value)
    for name, value in env.items():
        if name in ENV_ALIASES:
            found[ENV_ALIASES[name]] = (name, value)
        elif name.startswith(ENV_PREFIX) and name[len(ENV_PREFIX):] in keys:
            found[keys[name[len(ENV_PREFIX):]]] = (name, value)
        elif name.startswith(ENV_PREFIX) and name not in ENV_OTHER:
            known = [ENV_PREFIX + k for k in keys] + list(ENV_ALIASES) + list(ENV_OTHER)
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean {close[0]}?" if close else ""
            raise ConfigError(f"Unknown environment variable {name}: no such setting.{hint} "
                              "Fix or unset it (settings: `qabot --help`, "
                              "config/default.toml).")
    return found


def apply_overrides(settings: Settings, flat: Mapping[str, Any], source: str) -> Settings:
    by_section: dict[str, dict[str, Any]] = {}
    for dotted, raw in flat.items():
        if dotted in RENAMED:
            log.warning("The setting %s (from %s) is now called %s; the old name still "
                        "works, for now.", dotted, source, RENAMED[dotted])
            dotted = RENAMED[dotted]
        section_name, _, key = dotted.partition(".")
        if section_name in _NOT_SECTIONS or not hasattr(settings, section_name):
            raise ConfigError(f"Unknown config section {section_name!r} (from {source}). "
                              f"Known keys: {', '.join(known_keys())}.")
        section = getattr(settings, section_name)
        names = {f.name: f for f in dataclasses.fields(section)}
        if key not in names:
            raise ConfigError(f"Unknown setting {dotted!r} (from {source}). "
                              f"Known keys: {', '.join(known_keys())}.")
        default = getattr(type(section)(), key)
        by_section.setdefault(section_name, {})[key] = _coerce(raw, type(default), dotted, source)
    origins = dict(settings.origins)
    for section_name, values in by_section.items():
        section = dataclasses.replace(getattr(settings, section_name), **values)
        settings = dataclasses.replace(settings, **{section_name: section})
        origins.update({f"{section_name}.{key}": source for key in values})
    return dataclasses.replace(settings, origins=origins)


def effective(settings: Settings) -> list[tuple[str, Any, str]]:
    """(``section.key``, value, where it came from) for every setting: "default", the
    TOML file's path, "environment (VARIABLE)" or "command line"."""
    def where(key: str) -> str:
        origin = settings.origins.get(key, "default")
        prefix = f"{settings.root}{os.sep}"  # files of this checkout, relative to it
        return origin[len(prefix):] if origin.startswith(prefix) else origin

    return [(key, getattr(getattr(settings, key.split(".")[0]), key.split(".")[1]), where(key))
            for key in known_keys()]


def _coerce(value: Any, kind: type, name: str, source: str) -> Any:
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            if kind is bool:
                if text.lower() in {"1", "true", "yes", "on"}:
                    return True
                if text.lower() in {"0", "false", "no", "off"}:
                    return False
                raise ValueError(text)
            if kind in (int, float):
                return kind(text)
            if kind is str:
                return text
        except ValueError:
            pass
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    raise ConfigError(f"Setting {name} (from {source}) must be {kind.__name__}, got {value!r}.")


def _check_bounds(s: Settings) -> list[str]:
    """Every setting against the values declared beside it (``setting``)."""
    problems = []
    for section in dataclasses.fields(Settings):
        if section.name in _NOT_SECTIONS:
            continue
        for item in dataclasses.fields(getattr(s, section.name)):
            key, value = f"{section.name}.{item.name}", getattr(getattr(s, section.name),
                                                               item.name)
            low, high, choices = (item.metadata.get(n) for n in ("at_least", "at_most", "one_of"))
            where = s.origins.get(key, "default")
            if choices is not None and str(value).strip().lower() not in choices:
                named = ", ".join(choices[:-1]) + " or " + choices[-1]
                problems.append(f"{key} must be {named} (got {value!r}, from {where})")
            elif low is not None and value < low:
                problems.append(f"{key} must be at least {low:g} (got {value!r}, from {where})")
            elif high is not None and value > high:
                problems.append(f"{key} must be at most {high:g} (got {value!r}, from {where})")
    return problems


def _validate(s: Settings) -> None:
    problems = _check_bounds(s)
    # an empty home would resolve to the project root and put the index among the code
    # (an empty paths.docs only means "no default folder": ingest then needs a PATH)
    if not s.paths.home.strip():
        problems.append(f"paths.home is empty: give a folder (default: {PathsSettings().home})")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{1,60}[A-Za-z0-9]", s.store.collection):
        problems.append("store.collection must be 3-62 letters, digits, '.', '_' or '-'")
    if s.store.url and not re.match(r"https?://[^/:]+(:\d+)?/?$", s.store.url):
        problems.append("store.url must look like http://host:port")
    if not 0 <= s.chunking.overlap < s.chunking.size:
        problems.append("chunking.overlap must be >= 0 and smaller than chunking.size")
    if s.retrieval.fetch_k < s.retrieval.k:
        problems.append("retrieval.fetch_k must be >= retrieval.k")
    if not (s.retrieval.dense or s.retrieval.bm25):
        problems.append("at least one of retrieval.dense and retrieval.bm25 must be true")
    from bot.answerers import ANSWERERS  # the registry says what each answerer needs

    kind = ANSWERERS.get(s.answer.answerer)
    if kind is not None and kind.embedder and s.embeddings.backend != kind.embedder:
        problems.append(f"answer.answerer = {kind.name} was fitted with the {kind.embedder} "
                        "embedder (its refusal model reads that embedder's similarities); "
                        f"with embeddings.backend = {s.embeddings.backend} use "
                        "answer.answerer = auto or none")
    for name in ("allowed_users", "allowed_chats"):
        value = getattr(s.telegram, name)
        if any(not part.strip().lstrip("-").isdigit() for part in value.split(",") if part.strip()):
            problems.append(f"telegram.{name} must be comma-separated numeric ids")
    if s.llm.provider != "none" and not s.llm.model:
        problems.append("llm.model must name a model when llm.provider is set")
    if problems:
        raise ConfigError("Invalid settings: " + "; ".join(problems) + ".")
