"""The runnable parts of a markdown page: fenced blocks marked to run, and the output shown.

A block runs when the line before its fence (blank lines aside) is `<!-- run -->`; a plain
fenced block after `<!-- output -->` is what the last run block prints. In an output block `…`
stands for any text within a line, and a line of only `…` for lines left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

RUN = "<!-- run -->"
OUTPUT = "<!-- output -->"
_FENCE = re.compile(r"^```(\S*)\s*$")


@dataclass
class Block:
    language: str  # "sh" or "python"
    code: str
    line: int  # where the fence opens, 1-based
    outputs: list[str] = field(default_factory=list)


def blocks(path: Path) -> list[Block]:
    """The page's run blocks in order, each with the output blocks shown after it."""
    lines = path.read_text().splitlines()
    found: list[Block] = []
    marker: str | None = None
    index = 0
    while index < len(lines):
        text = lines[index].strip()
        fence = _FENCE.match(text)
        if fence is None:
            if text in (RUN, OUTPUT):
                marker = text
            elif text:
                marker = None
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        body = "\n".join(lines[index + 1 : end]) + "\n"
        if marker == RUN:
            if fence.group(1) not in ("sh", "python"):
                raise ValueError(f"{path}:{index + 1}: only sh and python blocks can run")
            found.append(Block(fence.group(1), body, index + 1))
        elif marker == OUTPUT:
            if not found:
                raise ValueError(f"{path}:{index + 1}: output shown before any run block")
            found[-1].outputs.append(body)
        marker = None
        index = end + 1
    return found


def missing_lines(expected: str, actual: str) -> list[str]:
    """The expected lines not found, in order, among the actual ones (empty: all there)."""
    actual_lines = [line.rstrip() for line in actual.splitlines()]
    position = 0
    missing: list[str] = []
    for line in expected.splitlines():
        line = line.rstrip()
        if not line.strip() or line.strip() == "…":
            continue
        pattern = re.compile(".*".join(re.escape(part) for part in line.split("…")))
        for offset, candidate in enumerate(actual_lines[position:]):
            if pattern.fullmatch(candidate):
                position += offset + 1
                break
        else:
            missing.append(line)
    return missing


def script(page: list[Block], end_marker: str) -> str:
    """One bash script running the page's blocks in order, printing `end_marker N` after each."""
    parts = ["exec 2>&1", "set -euo pipefail"]
    for number, block in enumerate(page):
        if block.language == "sh":
            parts.append(block.code)
        else:
            parts.append(f"python - <<'PYTHON_BLOCK'\n{block.code}PYTHON_BLOCK")
        parts.append(f"printf '\\n{end_marker} {number}\\n'")
    return "\n".join(parts) + "\n"
