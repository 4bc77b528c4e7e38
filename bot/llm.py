"""Optional LLM answers with enforced citations (``llm.provider = openai | ollama``).

The model sees the retrieved passages numbered ``[1]..[k]`` inside ``<passages>``
delimiters, with standing instructions to answer only from them, cite ``[n]``, answer
in the question's language, reply ``NOT_FOUND`` when they do not answer, and treat
passage text as data. Its reply is then checked, not trusted:

* markers pointing to no passage are removed; the citations list holds only the
  passages actually cited;
* a marker is not support by itself: every clause of the reply (split at commas and
  semicolons too, so a grounded half cannot carry an invented half) must share at least
  ``GROUNDED_SHARE`` of its words (Latin words, numbers, CJK character pairs) with the
  passages its sentence cites (with any passage when it cites none), so ``PWNED [1]``
  fails; and a link, e-mail address or number (amounts and phone numbers among them)
  that none of those passages contains fails the reply whatever else it shares;
* a reply with no valid citation, or with a sentence that fails that check, is
  unsupported: per ``llm.unsupported`` the extractive answer is shown instead, or the
  reply is shown with a warning;
* any failure (timeout, 5xx, 429, refused connection, malformed or empty output) falls
  back to the extractive answer, marked as such, with the cause logged.

The wrapper that asks the model and applies these checks is ``bot/answerers/llm.py``.
The chat models come from ``langchain-openai`` / ``langchain-ollama`` (``pip install
'.[llm]'``), imported only when configured.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from typing import Any

from langchain_core.documents import Document

from bot import tokens
from bot.config import LLMSettings
from bot.errors import ConfigError

log = logging.getLogger(__name__)

NOT_FOUND = "NOT_FOUND"
_MARKER = re.compile(r"[\[【]\s*(\d+(?:\s*[,，、]\s*\d+)*)\s*[\]】]")


def make_chat_model(cfg: LLMSettings, env: dict[str, str] | None = None) -> Any:
    """A LangChain chat model for the configured provider (errors say what to set)."""
    env = dict(os.environ) if env is None else env
    try:
        if cfg.provider == "openai":
            from langchain_openai import ChatOpenAI

            key = env.get(cfg.api_key_env, "").strip()
            if not key:
                raise ConfigError(f"llm.provider is openai but ${cfg.api_key_env} is empty. "
                                  f"Set {cfg.api_key_env} to your API key (llm.api_key_env "
                                  "names the variable), or set llm.provider = \"none\".")
            from pydantic import SecretStr

            # max_completion_tokens is the field's constructor name (max_tokens its alias)
            return ChatOpenAI(model=cfg.model, base_url=cfg.base_url or None,
                              api_key=SecretStr(key), temperature=cfg.temperature,
                              timeout=cfg.timeout, max_completion_tokens=cfg.max_tokens,
                              max_retries=0)
        if cfg.provider == "ollama":
            from langchain_ollama import ChatOllama

            return ChatOllama(model=cfg.model, base_url=cfg.base_url or None,
                              temperature=cfg.temperature, num_predict=cfg.max_tokens,
                              client_kwargs={"timeout": cfg.timeout})
    except ImportError as exc:
        raise ConfigError(f"llm.provider = {cfg.provider} needs the LLM extra: "
                          "pip install -e '.[llm]'.") from exc
    raise ConfigError(f"Unknown llm.provider {cfg.provider!r}: use none, openai or ollama.")


def format_passages(passages: Sequence[Document]) -> str:
    """Numbered, delimited passages; a passage cannot close its own delimiter."""
    blocks = []
    for n, doc in enumerate(passages, 1):
        text = re.sub(r"</?\s*passages?\b", lambda m: m.group(0).replace("<", "‹"),
                      doc.page_content, flags=re.I)
        source = str(doc.metadata.get("source", "")).replace('"', "'")
        blocks.append(f'<passage id="{n}" source="{source}">\n{text}\n</passage>')
    return "\n".join(blocks)


# Share of a reply sentence's words that its cited passages must contain. Hand-set, not
# tuned on any evaluation set: a faithful paraphrase keeps most names, numbers and
# character pairs of its source (the scripted replies in tests/test_llm.py share
# 0.5-1.0), text the passages never said shares next to none.
GROUNDED_SHARE = 0.3
# Clauses with fewer units than this ("1863", 「此外」) carry too little to measure a
# share on: they are checked by the link, address and number rule alone.
MIN_CLAUSE_UNITS = 3
_CLAUSE = re.compile(r"[，,；;、\n]|[：:](?!//)|(?<=[.])\s+")  # "http://" is no clause end
# what a reply must never invent: where to go, whom to write or call, how much
_LINK = re.compile(r"(?:https?://|www\.)[^\s<>\[\]【】，。]+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
                   r"|\b[\w-]+(?:\.[\w-]+)*\.(?:com|net|org|cn|io|info|xyz|top|ru|me)\b",
                   re.I)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_UNIT = re.compile(r"[0-9]+(?:[.,][0-9]+)*|[^\W\d_]+", re.UNICODE)
_CJK_RUN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")
_REPLY_SENTENCE = re.compile(r"(?<=[。！？!?；;\n])|(?<=[.])\s+")


def _units(text: str) -> set[str]:
    """Latin words, numbers, and CJK character pairs (single characters when alone)."""
    text = tokens.normalize(text)
    out: set[str] = set()
    for match in _UNIT.finditer(text):
        word = match.group(0)
        runs = _CJK_RUN.findall(word)
        if not runs:
            out.add(word)
            continue
        for rest in _CJK_RUN.split(word):
            if rest:
                out.add(rest)
        for run in runs:
            out.update([run] if len(run) == 1 else [run[i:i + 2] for i in range(len(run) - 1)])
    return out


def _facts(text: str) -> set[str]:
    """Links, e-mail addresses and numbers (digits only, separators dropped) in ``text``."""
    links = {m.group(0).lower().rstrip(".") for m in _LINK.finditer(text)}
    numbers = {re.sub(r"[.,]", "", m.group(0)) for m in _NUMBER.finditer(text)}
    return links | numbers


def ungrounded(text: str, passages: Sequence[Document]) -> list[str]:
    """The clauses of a (marker-checked) reply that their cited passages do not support:
    too few words shared with them, or a link, address or number none of them holds."""
    sentences: list[tuple[str, set[str], set[int]]] = []
    for piece in _REPLY_SENTENCE.split(text):
        cited = {int(n) for m in _MARKER.finditer(piece)
                 for n in re.split(r"\s*[,，、]\s*", m.group(1))}
        units = _units(_MARKER.sub(" ", piece))
        if not units:  # "… 1863. [1]": a marker after the full stop belongs to the sentence
            if cited and sentences:
                sentences[-1][2].update(cited)
            continue
        sentences.append((piece.strip(), units, cited))
    passage_units = [_units(p.page_content) for p in passages]
    passage_text = [p.page_content.lower() for p in passages]
    passage_facts = [_facts(p.page_content) for p in passages]
    bad = []
    for sentence, units, cited in sentences:
        picked = [n - 1 for n in cited if 1 <= n <= len(passages)] or range(len(passages))
        pool = set().union(*(passage_units[i] for i in picked))
        facts = set().union(*(passage_facts[i] for i in picked))
        texts = [passage_text[i] for i in picked]
        if len(units & pool) < GROUNDED_SHARE * len(units):  # the sentence as a whole
            bad.append(sentence)
            continue
        for clause in _CLAUSE.split(_MARKER.sub(" ", sentence)):
            units = _units(clause)
            shared_too_little = (len(units) >= MIN_CLAUSE_UNITS
                                 and len(units & pool) < GROUNDED_SHARE * len(units))
            invented = [f for f in _facts(clause)
                        if f not in facts and not any(f in t for t in texts)]
            if shared_too_little or invented:
                bad.append(clause.strip())
    return bad


def check_citations(text: str, k: int) -> tuple[str, list[int]]:
    """Drop markers outside 1..k; return the cleaned text and the cited numbers."""
    cited: list[int] = []

    def keep(match: re.Match[str]) -> str:
        numbers = [int(n) for n in re.split(r"\s*[,，、]\s*", match.group(1))]
        valid = [n for n in numbers if 1 <= n <= k]
        for n in valid:
            if n not in cited:
                cited.append(n)
        return "".join(f"[{n}]" for n in valid)

    cleaned = _MARKER.sub(keep, text)
    cleaned = re.sub(r"[ \t]+([。．.,，;；!?！？])", r"\1", cleaned)
    return re.sub(r"[ \t]{2,}", " ", cleaned).strip(), cited
