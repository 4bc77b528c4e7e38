"""Fakes at the boundaries and the harness that runs the real bot against them: a fake
Telegram Bot API, fake LLM servers, a private PostgreSQL, a PDF writer, and the fuzz
strategies. Shared by the tests (``tests/``) and the benchmarks (``python -m bench.…``);
not part of the installed package."""
