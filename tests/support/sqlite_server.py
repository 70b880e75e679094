"""`charter serve` as an operator runs it: the venv's `charter`, SQLite in a folder of its own."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.ports import free_port
from tests.support.servers import STARTUP_SECONDS, stop_group, tail

CHARTER = Path(sys.executable).with_name("charter")
_PRINTED_KEY = re.compile(r"^\s+(chk_\S+)\s*$", re.MULTILINE)


@dataclass
class SqliteServer:
    url: str
    key: str  # the admin key the first start printed
    folder: Path  # the server's working directory, with its ./charter.db
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def database(self) -> Path:
        return self.folder / "charter.db"


def clean_env() -> dict[str, str]:
    """This environment without CHARTER_* settings and without the venv on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARTER_")}
    venv_bin = str(CHARTER.parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    return env


@contextlib.contextmanager
def sqlite_server(folder: Path, key: str | None = None) -> Iterator[SqliteServer]:
    """`charter serve` in `folder` with no key set.

    On a new folder it makes the database and prints an admin key (which this reads); pass
    `key` when the folder holds a database with keys already.
    """
    port = free_port()
    log = folder / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(CHARTER), "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=folder,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, process, log)
        if key is None:
            printed = _PRINTED_KEY.search(log.read_text(errors="replace"))
            assert printed, f"the first start printed no admin key:\n{tail(log)}"
            key = printed.group(1)
        yield SqliteServer(url, key, folder, process, log)
    finally:
        stop_group(process, first=signal.SIGTERM)


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if process.poll() is not None:
            raise AssertionError(f"charter serve exited early:\n{tail(log)}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"charter serve not healthy in {STARTUP_SECONDS} s:\n{tail(log)}")
        time.sleep(0.05)
