"""Terminal colour, on only when it helps: a terminal, and no NO_COLOR."""

from __future__ import annotations

import os
import sys
from typing import TextIO

_CODES = {
    "bold": "1",
    "dim": "2",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "blue": "34",
    "magenta": "35",
    "cyan": "36",
}

STATUS_COLOUR = {"active": "green", "paused": "yellow", "completed": "cyan", "cancelled": "red"}
PRIORITY_COLOUR = {"critical": "red", "high": "yellow", "normal": "", "low": "dim"}


class Style:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    @classmethod
    def for_stream(cls, mode: str, stream: TextIO = sys.stdout) -> Style:
        if mode == "always":
            return cls(True)
        if mode == "never" or os.environ.get("NO_COLOR"):
            return cls(False)
        return cls(stream.isatty())

    def __call__(self, text: str, *styles: str) -> str:
        codes = [_CODES[s] for s in styles if s]
        if not self.enabled or not codes:
            return text
        return f"\x1b[{';'.join(codes)}m{text}\x1b[0m"

    def diff(self, text: str) -> str:
        """A unified diff, with additions green and removals red."""
        lines = []
        for line in text.splitlines():
            if line.startswith(("+++", "---")):
                lines.append(self(line, "bold"))
            elif line.startswith("+"):
                lines.append(self(line, "green"))
            elif line.startswith("-"):
                lines.append(self(line, "red"))
            elif line.startswith("@@"):
                lines.append(self(line, "cyan"))
            else:
                lines.append(line)
        return "\n".join(lines)
