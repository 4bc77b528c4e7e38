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

The chat models come from ``langchain-openai`` / ``langchain-ollama`` (``pip install
'.[llm]'``), imported only when configured.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from langchain_core.documents import Document

from bot import prompts, tokens
from bot.answering import Answerer, Query, citation_of
from bot.answers import Answer, Mode
from bot.config import LLMSettings, Settings
from bot.errors import ConfigError
from bot.sessions import Turn

log = logging.getLogger(__name__)

TokenFn = Callable[[str], None]
NOT_FOUND = "NOT_FOUND"
_MARKER = re.compile(r"[\[【]\s*(\d+(?:\s*[,，、]\s*\d+)*)\s*[\]】]")
_FALLBACK_NOTE = {"zh": "(大模型暂不可用，以下为抽取式答案)",
                  "en": "(LLM unavailable: extractive answer)"}
_REJECTED_NOTE = {"zh": "(大模型的回答没有通过引用检查，以下为抽取式答案)",
                  "en": "(the model's answer failed the citation check: extractive answer)"}
_UNSUPPORTED_NOTE = {"zh": "⚠ 以下回答没有引用任何段落，可能没有依据：",
                     "en": "⚠ This answer cites no passage and may be unsupported:"}


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


class LLMAnswerer:
    """Generation over the retrieved passages, checked; extractive answer as the fallback."""

    def __init__(self, settings: Settings, extractive: Answerer,
                 chat_model: Any | None = None) -> None:
        self.cfg = settings.llm
        self.extractive = extractive
        self.model = chat_model or make_chat_model(self.cfg)
        self.prompts = settings.prompts_dir

    def __call__(self, inputs: dict[str, Any]) -> Answer:
        return self.answer(inputs["query"], inputs["passages"], inputs.get("on_token"))

    def answer(self, query: Query, passages: Sequence[Document],
               on_token: TokenFn | None = None) -> Answer:
        fallback = self.extractive.answer(query, passages)
        lang = "zh" if tokens.is_mostly_cjk(query.question) else "en"
        if not passages:
            return fallback
        messages = [
            ("system", prompts.render(self.prompts, "system", lang)),
            ("human", prompts.render(self.prompts, "answer", lang,
                                     passages=format_passages(passages),
                                     question=query.question)),
        ]
        try:
            text = self._generate(messages, on_token)
        except Exception as exc:  # any provider failure: the user still gets an answer
            log.warning("LLM answer failed (%s: %s); using the extractive answer",
                        type(exc).__name__, exc)
            return _fallback(fallback, lang, f"{type(exc).__name__}: {exc}")
        if not text.strip():
            log.warning("LLM returned an empty answer; using the extractive answer")
            return _fallback(fallback, lang, "empty output")
        if text.strip().upper().startswith(NOT_FOUND):
            refusal = self.extractive.refusal(query, passages)
            return replace(refusal, mode=Mode.LLM)
        cleaned, cited = check_citations(text, len(passages))
        unsupported = ungrounded(cleaned, passages) if cited else []
        if not cited or unsupported:
            cause = ("the model's answer cited no passage" if not cited else
                     f"{len(unsupported)} sentence(s) not supported by the passages they cite")
            log.warning("LLM answer rejected: %s (policy: %s)", cause, self.cfg.unsupported)
            if self.cfg.unsupported == "extractive":
                return _fallback(fallback, lang, cause, note=_REJECTED_NOTE)
            return replace(fallback, note=_UNSUPPORTED_NOTE[lang], text=cleaned, quotes=[],
                           citations=[], short_answer=None, short_cite=None,
                           mode=Mode.LLM_UNSUPPORTED)
        pool = [citation_of(n, passages[n - 1]) for n in range(1, len(passages) + 1)]
        citations = [pool[n - 1] for n in sorted(cited)]
        related = [c for c in pool if c.n not in cited]
        short = fallback.short_answer if fallback.citations and any(
            c.chunk_id == fallback.citations[0].chunk_id for c in citations) else None
        # prose with its own markers: the short answer is kept (evaluation) but not
        # shown apart
        return replace(fallback, text=cleaned, quotes=[], short_answer=short,
                       short_cite=None, refused=False, citations=citations,
                       related=related, mode=Mode.LLM)

    def rewrite(self, question: str, turns: Sequence[Turn]) -> str | None:
        """A standalone version of a follow-up, or None when the model cannot help."""
        if not turns or not self.cfg.rewrite:
            return None
        lang = "zh" if tokens.is_mostly_cjk(question) else "en"
        history = "\n".join(f"- {t.question}" for t in turns)
        prompt = prompts.render(self.prompts, "rewrite", lang, history=history,
                                question=question)
        try:
            text = self._generate([("human", prompt)], None).strip()
        except Exception as exc:
            log.warning("LLM rewrite failed (%s: %s); using the heuristic rewrite",
                        type(exc).__name__, exc)
            return None
        text = text.splitlines()[0].strip().strip('"“”') if text else ""
        if not text or len(text) > 4 * len(question) + 200:
            return None
        log.info("follow-up rewritten by the model: %r -> %r", question, text)
        return text

    def _generate(self, messages: list[tuple[str, str]], on_token: TokenFn | None) -> str:
        if on_token is None:
            reply = self.model.invoke(messages)
            return _text(reply.content)
        parts: list[str] = []
        for chunk in self.model.stream(messages):
            piece = _text(chunk.content)
            if piece:
                parts.append(piece)
                on_token(piece)
        return "".join(parts)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    raise ValueError(f"unexpected message content {type(content).__name__}")


def _fallback(answer: Answer, lang: str, cause: str,
              note: dict[str, str] = _FALLBACK_NOTE) -> Answer:
    """The extractive answer, labelled: the model failed (``_FALLBACK_NOTE``) or its
    answer was rejected (``_REJECTED_NOTE``)."""
    return replace(answer, note=note[lang], mode=Mode.EXTRACTIVE_FALLBACK,
                   evidence=replace(answer.evidence, llm_error=cause))
