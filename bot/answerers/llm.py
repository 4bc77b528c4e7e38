"""``llm.provider = openai | ollama``: an LLM writes the answer over the retrieved
passages, around whichever answerer ``answer.answerer`` names (its answer is the
fallback, and its refusal the shape of NOT_FOUND). The prompt and the checks its reply
must pass (citations that point at passages, clauses grounded in them) are in
bot/llm.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from langchain_core.documents import Document

from bot import prompts, tokens
from bot.answerers.contract import Answerer, Query
from bot.answers import NOT_IN_DOCUMENTS, Answer, Mode, citation_of
from bot.config import Settings
from bot.llm import NOT_FOUND, check_citations, format_passages, make_chat_model, ungrounded
from bot.sessions import Turn

log = logging.getLogger(__name__)

TokenFn = Callable[[str], None]
_FALLBACK_NOTE = {"zh": "(大模型暂不可用，以下为抽取式答案)",
                  "en": "(LLM unavailable: extractive answer)"}
_REJECTED_NOTE = {"zh": "(大模型的回答没有通过引用检查，以下为抽取式答案)",
                  "en": "(the model's answer failed the citation check: extractive answer)"}
_UNSUPPORTED_NOTE = {"zh": "⚠ 以下回答没有引用任何段落，可能没有依据：",
                     "en": "⚠ This answer cites no passage and may be unsupported:"}


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
            return replace(refusal, mode=Mode.LLM, threshold=None,
                           refusal_reason=NOT_IN_DOCUMENTS)
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
