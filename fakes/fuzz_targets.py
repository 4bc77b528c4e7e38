"""What the fuzzing throws at each input boundary, and what counts as a pass there.

Shared by ``tests/test_fuzz.py`` (a short run in ``make test``) and ``bench/fuzz.py``
(10,000 generated inputs a boundary). Each ``check_*`` feeds one generated input to the
real component and raises ``Unexpected`` when the component fails in a way a user
should never see: an exception other than the project's named errors, or text from
outside the ingested folder in an answer. Hangs are caught by the runner's deadline.

Boundaries: document bytes and file names (loaders and chunker), questions (the answer
path), config values (the settings resolver), evaluation files (the test-set reader),
Telegram updates (the handlers, through the fake Bot API).
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from bot.chunking import KIND_TABLE, iter_chunks
from bot.config import known_keys, load_settings
from bot.errors import ConfigError, DocumentError, QabotError, QuestionError
from bot.evaluation import load_testset
from bot.loading import SUPPORTED_SUFFIXES, load, strip_controls

# Planted outside the ingested folder (and linked into it): no answer may ever quote it.
OUTSIDE_MARK = "OUTSIDE-CANARY-5521"


class Unexpected(AssertionError):
    """A boundary failed the way a user must never see."""


# ----- strategies ------------------------------------------------------------------------------
_CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
_VALID_NASTY = ["\x1b[2J", "\x1b]0;t\x07", "\x00", "\r\n", "\u202e", "\ufeff", "😀",
                "\x9b31m", "<b>", "&amp;", "[1]", "**", "|", "#"]


def _text(nasty: list[str]) -> st.SearchStrategy[str]:
    return st.lists(st.one_of(st.text(max_size=30), st.text(_CJK, max_size=30),
                              st.sampled_from(nasty)), max_size=40).map("".join)


# "\ud800": a lone surrogate, what undecodable bytes of a file name or a terminal become
TEXT = _text([*_VALID_NASTY, "\ud800"])
# the Bot API delivers valid UTF-8 only: no lone surrogates in Telegram updates
TG_TEXT = _text(_VALID_NASTY)
LONG_TEXT = st.one_of(TEXT, st.integers(2_000, 12_000).map(lambda n: "问" * n))
TG_LONG_TEXT = st.one_of(TG_TEXT, st.integers(2_000, 12_000).map(lambda n: "问" * n))

DOCUMENT_BYTES = st.one_of(
    st.binary(max_size=4_000),
    TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")),
    TEXT.map(lambda t: t.encode("utf-16", "surrogatepass")),
    TEXT.map(lambda t: t.encode("gb18030", "replace")),
    st.builds(lambda head, body: f"# {head}\n\n| a | b |\n|---|---|\n| {body} | 1 |\n".encode(
        "utf-8", "surrogatepass"), TEXT, TEXT),
    st.builds(lambda body: f"<html><title>t</title><body><p>{body}</p></body></html>".encode(
        "utf-8", "surrogatepass"), TEXT),
)
FILE_NAME = st.builds(
    lambda stem, suffix: stem + suffix,
    st.one_of(st.text(string.ascii_letters + "中文 -_.", min_size=1, max_size=20),
              st.binary(min_size=1, max_size=12).map(
                  lambda b: b.replace(b"/", b"_").replace(b"\x00", b"_").decode(
                      "utf-8", "surrogateescape"))),
    st.sampled_from([*SUPPORTED_SUFFIXES, ".xlsx", ""]))

JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20)
_SQUADISH = st.fixed_dictionaries({"data": st.lists(st.fixed_dictionaries({
    "title": JSON_VALUE, "paragraphs": st.one_of(JSON_VALUE, st.lists(st.fixed_dictionaries({
        "context": st.one_of(TEXT, JSON_VALUE), "qas": st.one_of(JSON_VALUE, st.lists(
            st.fixed_dictionaries({"question": st.one_of(TEXT, JSON_VALUE),
                                   "answers": JSON_VALUE}), max_size=3))}), max_size=3))}),
    max_size=3)})
_LINE = st.one_of(JSON_VALUE, st.fixed_dictionaries(
    {"question": st.one_of(TEXT, JSON_VALUE), "answers": JSON_VALUE,
     "history": JSON_VALUE}))
TESTSET = st.one_of(
    _SQUADISH.map(lambda d: json.dumps(d, ensure_ascii=False)),
    st.lists(_LINE, max_size=5).map(
        lambda rows: "\n".join(json.dumps(r, ensure_ascii=False) for r in rows)),
    TEXT)

SETTING = st.tuples(st.sampled_from(known_keys()), st.one_of(
    TEXT, st.integers(-10**6, 10**6).map(str), st.floats(allow_nan=True).map(str),
    st.sampled_from(["true", "false", "", " ", "nan", "inf", "-1", "0", "1e309"])))


# ----- checks ----------------------------------------------------------------------------------
def check_document(folder: Path, name: str, raw: bytes) -> None:
    """Load and chunk one file: a DocumentError (with its message) or exact chunks."""
    path = folder / name
    try:
        path.write_bytes(raw)
    except (OSError, UnicodeEncodeError, ValueError):
        return  # a name this filesystem refuses: nothing reaches qabot
    try:
        try:
            doc = load(path, root=folder)
        except DocumentError as exc:
            if not str(exc):
                raise Unexpected("a DocumentError without a message") from exc
            return
        if strip_controls(doc.text) != doc.text:
            raise Unexpected(f"control characters left in the text of {name!r}")
        for chunk in iter_chunks(doc, size=60, overlap=10, measure=len):
            row = doc.text[chunk.start:chunk.end]
            # a table fact is cited at its row; any other chunk is its own text
            exact = row.startswith("|") if chunk.kind == KIND_TABLE else row == chunk.text
            if not exact:
                raise Unexpected(f"chunk offsets of {name!r} do not index the text")
    except Unexpected:
        raise
    except Exception as exc:
        raise Unexpected(f"loading {name!r}: {type(exc).__name__}: {exc}") from exc
    finally:
        path.unlink(missing_ok=True)


def check_question(engine: Any, question: str) -> None:
    """One question through the whole answer path."""
    try:
        answer = engine.answer(question)
    except QuestionError:
        return
    except Exception as exc:
        raise Unexpected(f"asking {question[:40]!r}: {type(exc).__name__}: {exc}") from exc
    shown = json.dumps(answer.to_dict(), ensure_ascii=False)
    if OUTSIDE_MARK in shown.replace(json.dumps(question, ensure_ascii=False), ""):
        raise Unexpected(f"text from outside the ingested folder in the answer to "
                         f"{question[:40]!r}")


def check_setting(root: Path, key: str, value: str) -> None:
    """One ``--set key=value``: loads, or one ConfigError."""
    try:
        load_settings(root=root, env={}, cli={key: value})
    except ConfigError as exc:
        if "\n" in str(exc):
            raise Unexpected(f"a multi-line error for {key}={value!r}") from exc
    except Exception as exc:
        raise Unexpected(f"{key}={value!r}: {type(exc).__name__}: {exc}") from exc


def check_testset(folder: Path, content: str) -> None:
    """One evaluation file: read, or a QabotError naming what is wrong."""
    path = folder / "set.jsonl"
    path.write_text(content, "utf-8", errors="surrogatepass")
    try:
        load_testset(path)
    except QabotError:
        return
    except Exception as exc:
        raise Unexpected(f"test set {content[:60]!r}: {type(exc).__name__}: {exc}") from exc


# ----- Telegram updates ------------------------------------------------------------------------
_ENTITY_TYPES = ["mention", "hashtag", "bot_command", "url", "bold", "text_mention",
                 "text_link", "code", "pre", "spoiler", "custom_emoji"]
_CHAT = st.fixed_dictionaries({"id": st.integers(-10**12, 10**12),
                               "type": st.sampled_from(["private", "group", "supergroup",
                                                        "channel"])})
_USER = st.fixed_dictionaries({"id": st.integers(1, 10**10), "is_bot": st.booleans(),
                               "first_name": TG_TEXT.map(lambda t: t or "x")})


def _entity(kind: str, offset: int, length: int) -> dict[str, Any]:
    entity: dict[str, Any] = {"type": kind, "offset": offset, "length": length}
    if kind == "text_mention":
        entity["user"] = {"id": 123456, "is_bot": True, "first_name": "QA"}
    if kind == "text_link":
        entity["url"] = "https://example.org/"
    if kind == "custom_emoji":
        entity["custom_emoji_id"] = "1"
    return entity


_ENTITIES = st.lists(st.builds(_entity, st.sampled_from(_ENTITY_TYPES),
                               st.integers(0, 200), st.integers(0, 200)), max_size=4)


def _message(text: str | None, chat: dict[str, Any], user: dict[str, Any] | None,
             entities: list[dict[str, Any]], extra: dict[str, Any]) -> dict[str, Any]:
    msg: dict[str, Any] = {"message_id": 1, "date": 0, "chat": chat, **extra}
    if user is not None:
        msg["from"] = user
    if text is not None:
        msg["text"] = text
        if entities:
            msg["entities"] = entities
    return msg


_MESSAGE = st.builds(
    _message, st.one_of(st.none(), TG_LONG_TEXT, TG_TEXT.map(lambda t: "/" + t),
                        TG_TEXT.map(lambda t: "@qa_test_bot " + t),
                        TG_TEXT.map(lambda t: "@qa_test_bot_evil " + t)),
    _CHAT, st.one_of(st.none(), _USER), _ENTITIES,
    st.sampled_from([{}, {"sticker": {"file_id": "s", "file_unique_id": "u", "width": 1,
                                      "height": 1, "is_animated": False,
                                      "is_video": False, "type": "regular"}},
                     {"photo": [{"file_id": "p", "file_unique_id": "u", "width": 1,
                                 "height": 1}]}]))
UPDATE = st.one_of(
    _MESSAGE.map(lambda m: {"message": m}),
    _MESSAGE.map(lambda m: {"edited_message": {**m, "edit_date": 1}}),
    _MESSAGE.map(lambda m: {"channel_post": m}),
    st.builds(lambda user, data, chat: {"callback_query": {
        "id": "cb", "chat_instance": "1", "from": user, "data": data,
        "message": {"message_id": 1, "date": 0, "chat": chat, "text": "x"}}},
        _USER, st.one_of(st.text(max_size=64), st.just("src:" + "9" * 58),
                         st.integers(-10**20, 10**20).map(lambda n: f"src:{n}")), _CHAT),
)
