"""English wording shared by every message: counts with the right noun form."""

from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``count(1, "document")`` -> "1 document"; ``count(3, "document")`` -> "3 documents"."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"
