"""Charter as a user installs it: the wheel built from this checkout, in fresh venvs.

Used by tests/test_packaging.py (the wheel with the `server` extra serves) and
tests/test_server_extra.py (the wheel alone is the client and the CLI). The venvs live in
pytest's temp directory, outside the checkout, and are made without pip: the test's own pip
installs into them (`pip --python`), so their site-packages hold Charter and its dependencies
and nothing else, which is what the size checks measure. Every step has a deadline.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD_SECONDS = 120.0
INSTALL_SECONDS = 240.0  # under the suite's 300 s per test, which counts fixtures
COMMAND_SECONDS = 60.0
STARTUP_SECONDS = 60.0
STOP_SECONDS = 10.0

# The top-level modules of the `server` extra's dependencies: none of them in a client install.
SERVER_MODULES = ("litestar", "sqlalchemy", "asyncpg", "aiosqlite", "alembic", "redis", "granian")


def project_version() -> str:
    version: str = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    return version


def _run(args: list[str], *, seconds: float, what: str) -> str:
    try:
        done = subprocess.run(
            args,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=seconds,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        partial = [out.decode(errors="replace") if isinstance(out, bytes) else out or ""
                   for out in (exc.stdout, exc.stderr)]  # fmt: skip
        pytest.fail(f"{what}: not done within {seconds:.0f} s\n" + "\n".join(partial))
    if done.returncode != 0:
        pytest.fail(f"{what}: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
    output: str = done.stdout
    return output


def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this checkout, built once per test session (`pip wheel --no-deps`)."""
    out = tmp_path_factory.getbasetemp() / "charter-wheel"
    if not out.is_dir():
        building = tmp_path_factory.mktemp("building-wheel")
        _run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(building),
             str(ROOT)],
            seconds=BUILD_SECONDS,
            what="pip wheel",
        )  # fmt: skip
        building.rename(out)
    (built,) = out.glob("charter-*.whl")
    return built


class Venv:
    """A fresh virtual environment with the wheel installed, and ways to run what it has."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.python = path / "bin" / "python"
        self.home = path / "home"  # HOME for what runs here: no user config of this machine's

    @classmethod
    def make(cls, path: Path, built: Path, extras: str = "") -> Venv:
        """A venv at `path` (without pip) with `built` installed, `[extras]` if given."""
        venv = cls(path)
        _run(
            [sys.executable, "-m", "venv", "--without-pip", str(path)],
            seconds=COMMAND_SECONDS,
            what="python -m venv",
        )
        venv.home.mkdir()
        requirement = f"charter[{extras}] @ {built.as_uri()}" if extras else str(built)
        _run(
            [sys.executable, "-m", "pip", "--python", str(venv.python), "install", "-q",
             "--no-input", requirement],
            seconds=INSTALL_SECONDS,
            what=f"pip install {requirement}",
        )  # fmt: skip
        return venv

    @property
    def site_packages(self) -> Path:
        (found,) = (self.path / "lib").glob("python3*/site-packages")
        return found

    def site_packages_bytes(self) -> int:
        """The installed files' sizes added up (bytecode included, as pip leaves it)."""
        return sum(file.lstat().st_size for file in self.site_packages.rglob("*") if file.is_file())

    def env(self, **charter: str) -> dict[str, str]:
        """A clean environment: this venv first on PATH, no PYTHONPATH, no CHARTER_ setting
        but the given ones (`database_url=…` is CHARTER_DATABASE_URL)."""
        path = f"{self.path / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"
        base = {"PATH": path, "HOME": str(self.home), "LANG": "C.UTF-8", "NO_COLOR": "1"}
        return base | {f"CHARTER_{name.upper()}": value for name, value in charter.items()}

    def run(
        self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run one of the venv's commands (`charter`, `python`) to the end, within a deadline."""
        return subprocess.run(
            [str(self.path / "bin" / args[0]), *args[1:]],
            env=env if env is not None else self.env(),
            cwd=cwd or self.home,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=COMMAND_SECONDS,
            check=False,
        )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Served:
    """A `charter serve` process on a free loopback port."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path, port: int) -> None:
        self.process = process
        self.log = log
        self.base_url = f"http://127.0.0.1:{port}"

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_healthy(self) -> httpx.Response:
        """The first 200 from /healthz; fails the test if the server exits or is too slow."""
        deadline = time.monotonic() + STARTUP_SECONDS
        with httpx.Client(base_url=self.base_url, timeout=2.0) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    pytest.fail(f"charter serve exited early:\n{self.output}")
                with contextlib.suppress(httpx.TransportError):
                    answer = http.get("/healthz")
                    if answer.status_code == 200:
                        return answer
                time.sleep(0.2)
        pytest.fail(f"charter serve not healthy within {STARTUP_SECONDS:.0f} s:\n{self.output}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's own process group (its workers too), then SIGKILL if it lingers."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(STOP_SECONDS)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # workers a dead parent left behind


@contextlib.contextmanager
def serving(command: list[str], env: dict[str, str], cwd: Path) -> Iterator[Served]:
    """`command serve` on a free port in `cwd`, its output to a log there; stopped on exit."""
    port = free_port()
    log = cwd / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield Served(process, log, port)
    finally:
        _stop(process)
