"""Generate sync.py from aio.py with unasync, or check that sync.py is up to date.

    scripts/gen-sync          # rewrite sync.py
    scripts/gen-sync --check  # exit 1, with a diff, if sync.py is stale

It runs as a file (not `-m charter.client._generate`), importing nothing from charter, so a
broken sync.py never stands in the way of its own regeneration.

unasync drops `async`/`await` and renames the tokens below; the result gets the header and
docstring of a generated module, then ruff's fixes and format, so that the checked-in file is
exactly what this produces. A development tool: it needs the dev extra (unasync, ruff).
"""

from __future__ import annotations

import argparse
import difflib
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import unasync  # type: ignore[import-untyped]

HERE = Path(__file__).parent
SOURCE = HERE / "aio.py"
TARGET = HERE / "sync.py"

# Beyond unasync's own (AsyncGenerator → Generator, __aenter__ → __enter__, …).
RENAMES = {
    "AsyncCharter": "Charter",
    "AsyncClient": "Client",
    "AsyncBaseTransport": "BaseTransport",
    "AsyncRetryingCaller": "RetryingCaller",
    "aclose": "close",
    "aread": "read",
    "aiter_sse": "iter_sse",
    "asyncio": "time",  # asyncio.sleep → time.sleep; aio.py uses asyncio for nothing else
}

HEADER = '''\
# Generated from aio.py by src/charter/client/_generate.py (unasync): do not edit.
# Change aio.py, then run scripts/gen-sync; scripts/check fails while this file is stale.
"""`Charter`: the blocking client, generated from `AsyncCharter` method for method."""
'''

_DOCSTRING = re.compile(r'\A"""(?:.|\n)*?"""\n')


def generate() -> str:
    """The text sync.py should have."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp, "_async", "aio.py")
        source.parent.mkdir()
        source.write_bytes(SOURCE.read_bytes())
        rule = unasync.Rule("/_async/", "/_sync/", additional_replacements=RENAMES)
        unasync.unasync_files([str(source)], [rule])
        text = Path(tmp, "_sync", "aio.py").read_text(encoding="utf-8")
    if not _DOCSTRING.match(text):
        raise SystemExit("aio.py must start with its docstring")
    text = _DOCSTRING.sub(lambda _: HEADER, text, count=1)
    text = _ruff(text, "check", "--fix", "--exit-zero", "--quiet")  # e.g. import order
    # `for item in items: yield item`, all async code can say, becomes `yield from items`
    # (unsafe in general, as it also forwards send/throw: these generators take neither).
    text = _ruff(text, "check", "--select", "UP028", "--fix", "--unsafe-fixes", "--quiet")
    return _ruff(text, "format", "--quiet")


def _ruff(text: str, *command: str) -> str:
    """`ruff` over `text` as if it were sync.py (so with the project's settings)."""
    done = subprocess.run(
        [sys.executable, "-m", "ruff", *command, "--stdin-filename", str(TARGET), "-"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"ruff {command[0]} failed on the generated code:\n{done.stderr}")
    return done.stdout


def stale_lines(target: Path = TARGET) -> list[str]:
    """A diff from `target` to what aio.py generates; empty when it is up to date."""
    current = target.read_text(encoding="utf-8") if target.exists() else ""
    diff = difflib.unified_diff(
        current.splitlines(keepends=True),
        generate().splitlines(keepends=True),
        f"{target.name} (as it is)",
        f"{target.name} (generated from aio.py)",
    )
    return list(diff)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate sync.py from aio.py (unasync).")
    parser.add_argument("--check", action="store_true", help="fail if sync.py is stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_lines()
        sys.stderr.writelines(stale)
        if stale:
            print("\nsync.py is stale: run scripts/gen-sync", file=sys.stderr)
        return 1 if stale else 0
    wanted = generate()
    if not TARGET.exists() or TARGET.read_text(encoding="utf-8") != wanted:
        TARGET.write_text(wanted, encoding="utf-8")
        print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
