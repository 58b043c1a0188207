"""Summarise a py-spy `--format raw` (collapsed stacks) profile of the worker.

    .venv/bin/python -m line_harness.bench.profile_report run/bench/profile-worker.txt [--top 15]

Prints, per thread, the share of samples, and the functions with the most samples at the top
of the stack (self time) and anywhere in the stack (inclusive), so hot spots in worker/ code
show with their file:line.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

from line_harness.paths import REPO

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def parse(path: Path) -> list[tuple[list[str], int]]:
    """[(stack frames root first, samples)] from a collapsed-stacks file."""
    out = []
    for line in Path(path).read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            out.append((stack.split(";"), int(count)))
    return out


def _short(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    file = m.group("file")
    for marker in (f"{REPO}/", "site-packages/", "python3.12/", "python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{m.group('func')} ({file}:{m.group('line') or '?'})"


def summarise(stacks: list[tuple[list[str], int]], top: int = 15) -> dict:
    """Thread shares, top self and top inclusive frames (sample counts and percentages)."""
    total = sum(n for _, n in stacks) or 1
    threads, selfs, incl = Counter(), Counter(), Counter()
    for frames, n in stacks:
        threads[frames[0].strip()] += n
        selfs[_short(frames[-1])] += n
        for f in {_short(f) for f in frames[1:]}:
            incl[f] += n
    pct = lambda c: [(k, v, round(100 * v / total, 1)) for k, v in c.most_common(top)]  # noqa: E731
    return {"samples": total, "threads": pct(threads), "self": pct(selfs), "inclusive": pct(incl)}


def format_summary(s: dict) -> str:
    """Text tables of a summary."""
    lines = [f"{s['samples']} samples"]
    for title in ("threads", "self", "inclusive"):
        lines.append(f"-- {title}")
        lines += [f"{p:5.1f}%  {name}" for name, _, p in s[title]]
    return "\n".join(lines)


def main(argv=None) -> int:
    """CLI: print the summary of one raw profile."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("profile", type=Path)
    p.add_argument("--top", type=int, default=15)
    args = p.parse_args(argv)
    print(format_summary(summarise(parse(args.profile), args.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
