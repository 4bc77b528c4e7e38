"""Optional LLM answers with enforced citations (``llm.provider = openai | ollama``).

The model sees the retrieved passages numbered ``[1]..[k]`` inside ``<passages>``
delimiters, with standing instructions to answer only from them, cite ``[n]``, answer
in the question's language, reply ``NOT_FOUND`` when they do not answer, and treat
passage text as data. Its reply is then checked, not trusted:

* markers pointing to no passage are removed; the citations list holds only the
  passages actually cited;
* a reply with no valid citation is unsupported: per ``llm.unsupported`` the extractive
  answer is shown instead, or the reply is shown with a warning;
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
from pathlib import Path
from typing import Any

from langchain_core.documents import Document

from bot import prompts, tokens
from bot.answering import Answer, Answerer, Query, citation_of
from bot.config import LLMSettings, Settings
from bot.errors import ConfigError
from bot.sessions import Turn

log = logging.getLogger(__name__)

TokenFn = Callable[[str], None]
NOT_FOUND = "NOT_FOUND"
_MARKER = re.compile(r"[\[【]\s*(\d+(?:\s*[,，、]\s*\d+)*)\s*[\]】]")
_FALLBACK_NOTE = {"zh": "(大模型暂不可用，以下为抽取式答案)",
                  "en": "(LLM unavailable: extractive answer)"}
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
            return ChatOpenAI(model=cfg.model, base_url=cfg.base_url or None, api_key=key,
                              temperature=cfg.temperature, timeout=cfg.timeout,
                              max_tokens=cfg.max_tokens, max_retries=0)
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
        folder = Path(self.cfg.prompts)
        self.prompts = folder if folder.is_absolute() else settings.root / folder

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
            return replace(refusal, mode="llm")
        cleaned, cited = check_citations(text, len(passages))
        if not cited:
            log.warning("LLM answer cited no valid passage (policy: %s)", self.cfg.unsupported)
            if self.cfg.unsupported == "extractive":
                return _fallback(fallback, lang, "the model's answer cited no passage")
            return replace(fallback, answer=f"{_UNSUPPORTED_NOTE[lang]}\n{cleaned}",
                           citations=[], short_answer=None, mode="llm-unsupported")
        pool = [citation_of(n, passages[n - 1]) for n in range(1, len(passages) + 1)]
        citations = [pool[n - 1] for n in sorted(cited)]
        related = [c for c in pool if c.n not in cited]
        short = fallback.short_answer if fallback.citations and any(
            c.chunk_id == fallback.citations[0].chunk_id for c in citations) else None
        return replace(fallback, answer=cleaned, short_answer=short, refused=False,
                       citations=citations, related=related, mode="llm")

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


def _fallback(answer: Answer, lang: str, cause: str) -> Answer:
    note = _FALLBACK_NOTE[lang]
    return replace(answer, answer=f"{note}\n{answer.answer}", mode="extractive-fallback",
                   evidence={**answer.evidence, "llm_error": cause})
