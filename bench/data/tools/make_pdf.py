"""Write bench/data/english/amendment_x.pdf: a one-page PDF whose text layer is
hard-wrapped lines (as PDF text layers are), with no PDF library.

    python -m bench.data.tools.make_pdf

The text is the Tenth Amendment to the Constitution of the United States (public
domain) with a line of context before it.
"""

from __future__ import annotations

from pathlib import Path

from fakes.pdf import make_pdf

ROOT = Path(__file__).resolve().parents[3]

LINES = [
    "The Tenth Amendment",
    "",
    "The Tenth Amendment was ratified on December 15, 1791, as the last of the ten",
    "amendments that make up the Bill of Rights. It reads:",
    "",
    "The powers not delegated to the United States by the Constitution, nor",
    "prohibited by it to the States, are reserved to the States respectively, or to",
    "the people.",
]


if __name__ == "__main__":
    target = Path(__file__).resolve().parent.parent / "english" / "amendment_x.pdf"
    target.write_bytes(make_pdf(LINES))
    print(target)
