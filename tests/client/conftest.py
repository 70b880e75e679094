"""A real `charter serve` on loopback, on a SQLite file of its own, for the client and CLI.

The client speaks HTTP over real sockets, so these tests run the real server process: the
shared one for most tests (each works in a realm of its own), and a private one for the tests
that stop and restart it. Every process started here is stopped at teardown.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from charter.client import Charter
from tests.support.sdk import new_realm
from tests.support.servers import CharterServer


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CharterServer]:
    """One server for the session; tests keep apart by working in realms of their own."""
    with CharterServer.on_sqlite(tmp_path_factory.mktemp("charter-serve")) as process:
        process.start()
        yield process


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[CharterServer]:
    """A server this test alone uses, to stop and restart."""
    with CharterServer.on_sqlite(tmp_path) as process:
        process.start()
        yield process


@pytest.fixture
def charter(server: CharterServer) -> Iterator[Charter]:
    with server.charter() as client:
        yield client


@pytest.fixture
def realm(charter: Charter) -> str:
    return new_realm(charter)
