"""`charter serve` on a taken port or an unknown host: one line and exit 2, nothing touched."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from charter.__main__ import main


@pytest.fixture
def empty_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("CHARTER_")]:
        monkeypatch.delenv(name)
    return tmp_path


def test_a_taken_port_is_one_line(empty_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--host", "127.0.0.1", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err == f"charter: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    assert list(empty_folder.iterdir()) == []  # refused before the database was made


def test_an_unknown_host_is_one_line(
    empty_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--host", "no-such-host.invalid", "--port", "8000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("charter: cannot listen on no-such-host.invalid:8000: unknown host")
    assert "Traceback" not in err
    assert list(empty_folder.iterdir()) == []
