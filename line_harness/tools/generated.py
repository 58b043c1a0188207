"""Files generated from the code and committed (chart README, image constraints): write one, or with
`--check` only say whether the committed copy is current, so CI and tests catch a stale one."""

from __future__ import annotations

import sys
from pathlib import Path


def write_or_check(path: Path, text: str, check: bool, command: str, wrote_note: str = "") -> int:
    """Write `text` to `path` (exit code 0); with check, change nothing and return 1, naming the `command`
    that regenerates it, when the file differs."""
    if check:
        if path.is_file() and path.read_text() == text:
            return 0
        print(f"{path} is out of date; run {command}", file=sys.stderr)
        return 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}{wrote_note}")
    return 0
