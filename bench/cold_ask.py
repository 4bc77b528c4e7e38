"""Cold `qabot ask`: wall time and peak memory of one whole process, per answerer.

    python -m bench.cold_ask [--runs 5] [--readers none,guided,trained] [--home DIR]

Each run is a fresh `qabot ask QUESTION` process over the seed index (``qabot ingest`` into
``--home`` first), timed by `/usr/bin/time -v`; medians of wall time and the
largest peak RSS are printed. Questions rotate over a few seed questions so no answer
cache helps (there is none, but the OS page cache is warm after the first run: this is
"cold process, warm disk").
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ("霍城县江苏医院综合病房大楼总投资多少?", "天华民乐团首批培训了多少名二胡学员?",
             "江阴组织实施了什么人才计划?", "霍城县的总人口是多少?")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--readers", default="none,guided,trained")
    ap.add_argument("--home", type=Path)
    args = ap.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="qabot-cold-"))
    qabot = str(Path(sys.executable).with_name("qabot"))
    env = {**os.environ, "QABOT_HOME": str(home)}
    # builds the index the first time; unchanged files cost nothing after that
    subprocess.run([qabot, "ingest"], env=env, cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for reader in args.readers.split(","):
        walls, peaks = [], []
        for n in range(args.runs):
            q = QUESTIONS[n % len(QUESTIONS)]
            out = subprocess.run(["/usr/bin/time", "-v", qabot, "--set",
                                  f"answer.answerer={reader}", "ask", q], env=env, cwd=ROOT,
                                 capture_output=True, text=True, check=True)
            wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\d+):([\d.]+)",
                             out.stderr)
            rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr)
            assert wall and rss, out.stderr[-500:]
            walls.append(int(wall.group(1)) * 60 + float(wall.group(2)))
            peaks.append(int(rss.group(1)) / 1024)
        print(f"answer.answerer={reader}: cold ask wall median {statistics.median(walls):.2f} s "
              f"(min {min(walls):.2f}, max {max(walls):.2f}); peak RSS max {max(peaks):.0f} MiB "
              f"over {args.runs} runs")


if __name__ == "__main__":
    main()
