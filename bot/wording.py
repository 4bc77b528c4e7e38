"""Wording shared by every message: counts with the right noun form, and names made
safe to print (a file name or title can carry terminal escape sequences)."""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1 controls: a terminal acts on these
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")  # undecodable bytes of a file name


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``count(1, "document")`` -> "1 document"; ``count(3, "document")`` -> "3 documents"."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def printable(name: str) -> str:
    """``name`` safe for a terminal or a log line: control characters (ESC starts
    clear-screen, window-title and hyperlink sequences) shown as ``\\x1b``, bytes that
    were not valid UTF-8 as ``\\xNN``, line breaks as ``\\n``."""
    out = _SURROGATE.sub(lambda m: f"\\x{ord(m.group(0)) - 0xDC00:02x}", name)
    out = _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", out)
    return out.replace("\n", "\\n").replace("\t", "\\t")


# a password in a URL (scheme://user:PASSWORD@host) or a libpq key=value string
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@/\s]+@")
_KV_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('[^']*'|\S+)", re.I)


def mask_password(text: str) -> str:
    """``text`` with any database or server password replaced by ``***``: settings shown
    in reports, and errors that quote a connection string."""
    return _KV_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", text))
