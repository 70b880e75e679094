"""The runnable parts of a markdown page: fenced blocks marked to run, and the output shown.

A block runs when the line before its fence (blank lines aside) is `<!-- run -->`; a plain
fenced block after `<!-- output -->` is what the last run block prints. In an output block `…`
stands for any text within a line, and a line of only `…` for lines left out. After
`<!-- output, numbers vary -->` every number shown also stands for any number (statistics
drawn afresh on each run), and a run of spaces for any run of spaces. A block after
`<!-- file: NAME -->` is a file the reader saves: it is written to NAME, in the working
directory, where it stands among the run blocks.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

RUN = "<!-- run -->"
OUTPUT = "<!-- output -->"
OUTPUT_NUMBERS_VARY = "<!-- output, numbers vary -->"
_FILE = re.compile(r"^<!-- file: ([A-Za-z0-9._-]+) -->$")
_FENCE = re.compile(r"^```(\S*)\s*$")
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


@dataclass
class Block:
    language: str  # "sh", "python", or "file" (saved to `path`, not run)
    code: str
    line: int  # where the fence opens, 1-based
    outputs: list[str] = field(default_factory=list)
    varying_outputs: list[str] = field(default_factory=list)  # numbers vary
    path: str | None = None  # a file block's name


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
            if text in (RUN, OUTPUT, OUTPUT_NUMBERS_VARY) or _FILE.match(text):
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
        elif marker is not None and (saved := _FILE.match(marker)):
            found.append(Block("file", body, index + 1, path=saved.group(1)))
        elif marker in (OUTPUT, OUTPUT_NUMBERS_VARY):
            if not found or found[-1].language == "file":
                raise ValueError(f"{path}:{index + 1}: output shown before any run block")
            shown = found[-1].outputs if marker == OUTPUT else found[-1].varying_outputs
            shown.append(body)
        marker = None
        index = end + 1
    return found


def missing_lines(expected: str, actual: str, *, numbers_vary: bool = False) -> list[str]:
    """The expected lines not found, in order, among the actual ones (empty: all there)."""
    actual_lines = [line.rstrip() for line in actual.splitlines()]
    position = 0
    missing: list[str] = []
    for line in expected.splitlines():
        line = line.rstrip()
        if not line.strip() or line.strip() == "…":
            continue
        pattern = re.compile(".*".join(_literal(part, numbers_vary) for part in line.split("…")))
        for offset, candidate in enumerate(actual_lines[position:]):
            if pattern.fullmatch(candidate):
                position += offset + 1
                break
        else:
            missing.append(line)
    return missing


def _literal(text: str, numbers_vary: bool) -> str:
    """A regular expression for `text`; with `numbers_vary`, any number for each number and
    any run of spaces for each run of spaces."""
    if not numbers_vary:
        return re.escape(text)
    pieces: list[str] = []
    last = 0
    for number in _NUMBER.finditer(text):
        pieces.append(re.escape(text[last : number.start()]))
        pieces.append(_NUMBER.pattern)
        last = number.end()
    pieces.append(re.escape(text[last:]))
    return re.sub(r"(\\ )+", r" +", "".join(pieces))


def script(page: list[Block], end_marker: str) -> str:
    """One bash script running the page's blocks in order, printing `end_marker N` after each."""
    parts = ["exec 2>&1", "set -euo pipefail"]
    for number, block in enumerate(page):
        if block.language == "file":
            saved = f"cat > '{block.path}' <<'FILE_BLOCK_END'\n{block.code}FILE_BLOCK_END"
            parts.append(saved)
        elif block.language == "sh":
            parts.append(block.code)
        else:
            parts.append(f"python - <<'PYTHON_BLOCK'\n{block.code}PYTHON_BLOCK")
        parts.append(f"printf '\\n{end_marker} {number}\\n'")
    return "\n".join(parts) + "\n"


def run_page(path: Path, *, cwd: Path, env: dict[str, str], timeout: float) -> str | None:
    """Run the page's blocks in one bash: None when every block ran and printed what the page
    shows, else what went wrong, naming the block by its line."""
    page = blocks(path)
    end = "@@charter-block-end"
    try:
        done = subprocess.run(
            ["bash", "-c", script(page, end)],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired as late:
        pieces = (late.stdout or b"").decode(errors="replace").split(f"\n{end} ")
        stuck = page[min(len(pieces) - 1, len(page) - 1)]
        return (
            f"{path.name}:{stuck.line}: still running after {timeout:g} s:\n{stuck.code}\n"
            f"--- its output so far ---\n{pieces[-1]}"
        )
    pieces = done.stdout.decode(errors="replace").split(f"\n{end} ")
    finished = len(pieces) - 1
    if done.returncode != 0 or finished != len(page):
        failed = page[min(finished, len(page) - 1)]
        return (
            f"{path.name}:{failed.line}: the block exited {done.returncode}:\n{failed.code}\n"
            f"--- its output ---\n{pieces[-1]}"
        )
    for number, block in enumerate(page):
        printed = pieces[number].partition("\n")[2] if number else pieces[0]
        for shown, numbers_vary in [(o, False) for o in block.outputs] + [
            (o, True) for o in block.varying_outputs
        ]:
            missing = missing_lines(shown, printed, numbers_vary=numbers_vary)
            if missing:
                return (
                    f"{path.name}:{block.line}: output the page shows was not printed: {missing}"
                    f"\n--- printed ---\n{printed}"
                )
    return None
