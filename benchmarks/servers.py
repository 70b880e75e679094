"""Granian processes for Charter and the bare baseline: same options, stopped at exit."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from charter.server_cli import open_files_limit

# The options `charter serve` uses (ADR 0002, and its backpressure), for both servers.
GRANIAN = [
    "--interface",
    "asgi",
    "--workers",
    "1",
    "--loop",
    "uvloop",
    "--no-access-log",
    "--backpressure",
    str(open_files_limit()),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """A granian server for `target` (an app factory), or `command` (such as `charter serve`)
    given the host and port; `env` changes this process's environment (None: unset)."""

    def __init__(
        self,
        name: str,
        target: str,
        env: Mapping[str, str | None],
        log: Path,
        *,
        command: list[str] | None = None,
        cwd: Path | None = None,
        workers: int = 1,
    ) -> None:
        self.name = name
        self.port = free_port()
        self.log = log
        address = ["--host", "127.0.0.1", "--port", str(self.port)]
        if command is None:
            # GRANIAN's `--workers 1`, with this server's count.
            options = [
                str(workers) if before == "--workers" else option
                for before, option in zip(["", *GRANIAN], GRANIAN, strict=False)
            ]
            command = ["granian", target, "--factory", *options, "--log-level", "warning"]
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [*command, *address],
                env={k: v for k, v in {**os.environ, **env}.items() if v is not None},
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its workers share its process group: stopped together
            )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, seconds: float = 30.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not start:\n{self.log.read_text()[-3000:]}")

    def worker_pids(self) -> list[int]:
        """The server's processes (granian's main process and its worker)."""
        out = subprocess.run(
            ["pgrep", "-g", str(self.process.pid)], capture_output=True, text=True, check=False
        ).stdout
        return [int(pid) for pid in out.split()]

    def profile(self, out: Path, seconds: float) -> subprocess.Popen[bytes] | None:
        """py-spy on the server's worker for `seconds`, collapsed stacks, if py-spy is there."""
        workers = [pid for pid in self.worker_pids() if pid != self.process.pid]
        if not workers or shutil.which("py-spy") is None:
            return None
        command = ["py-spy", "record", "--nonblocking", "-r", "200", "-d", str(int(seconds))]
        command += ["-f", "raw", "-o", str(out), "-p", str(workers[0])]
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        pgid = self.process.pid
        os.killpg(pgid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.process.wait(5)
