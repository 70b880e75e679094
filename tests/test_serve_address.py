"""`charter serve` on a taken port or an unknown host: one line and exit 2, nothing touched.

Run as a subprocess: importing the server commands into the test process would defeat
tests/test_server_extra.py, which hides them to play a client-only install.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from tests.support.sqlite_server import CHARTER, clean_env


def serve(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHARTER), "serve", *args],
        cwd=folder,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_taken_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = serve(tmp_path, "--host", "127.0.0.1", "--port", str(port))
    assert done.returncode == 2
    assert done.stderr == f"charter: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    assert list(tmp_path.iterdir()) == []  # refused before the database was made


def test_an_unknown_host_is_one_line(tmp_path: Path) -> None:
    done = serve(tmp_path, "--host", "no-such-host.invalid", "--port", "8000")
    assert done.returncode == 2
    assert done.stderr.startswith("charter: cannot listen on no-such-host.invalid:8000: unknown")
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []
