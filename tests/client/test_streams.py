"""Event streams with heartbeats on (every 50 ms): the client parses them with httpx-sse,
which turns each `: ping` into an empty "message" event; none of those reaches a caller, and
the streams still resume across a server restart."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from charter.client import AsyncCharter, Charter, NewDirective, Patch
from charter.client._shared import Cursor
from charter.settings import Settings
from tests.support.api import ADMIN_KEY
from tests.support.sdk import FAST_RETRY, new_realm
from tests.support.servers import CharterServer

T = TypeVar("T")
HEARTBEAT_SECONDS = 0.05
WAIT_SECONDS = 20.0


@pytest.fixture
def beating(tmp_path: Path) -> Iterator[CharterServer]:
    """A server whose streams send a heartbeat every 50 ms."""
    with CharterServer.on_sqlite(tmp_path, heartbeat_seconds=str(HEARTBEAT_SECONDS)) as process:
        process.start()
        yield process


def _next(stream: Iterator[T], seconds: float = WAIT_SECONDS) -> T:
    """`next(stream)`, or fail after `seconds` (a daemon thread: a stuck stream cannot hang
    the run)."""
    answers: queue.Queue[T | BaseException] = queue.Queue()

    def pull() -> None:
        try:
            answers.put(next(stream))
        except BaseException as exc:  # handed to the test
            answers.put(exc)

    threading.Thread(target=pull, daemon=True).start()
    try:
        answer = answers.get(timeout=seconds)
    except queue.Empty:
        pytest.fail(f"no event within {seconds} s")
    if isinstance(answer, BaseException):
        raise answer
    return answer


def _setup(server: CharterServer) -> tuple[str, str]:
    with server.charter() as charter:
        realm = new_realm(charter)
        node = charter.create(
            NewDirective(level="realm", title="Ship", body="v1", owner_agent_id="coder"),
            realm=realm,
        )
    return realm, node.id


async def _raw_lines(url: str, seconds: float) -> list[str]:
    """The lines of a stream as sent, for `seconds`."""
    lines: list[str] = []
    headers = {"Authorization": f"Bearer {ADMIN_KEY}", "Accept": "text/event-stream"}
    async with httpx.AsyncClient(headers=headers) as http:

        async def read() -> None:
            async with http.stream("GET", url) as response:
                assert response.status_code == 200
                async for line in response.aiter_lines():
                    lines.append(line)

        with pytest.raises(TimeoutError):
            await asyncio.wait_for(read(), seconds)
    return lines


async def test_heartbeats_are_sent_and_never_reach_callers(beating: CharterServer) -> None:
    realm, _ = _setup(beating)
    path = f"/v1/realms/{realm}/events/stream"
    wire = await _raw_lines(f"{beating.url}{path}", 1.0)
    assert sum(line.startswith(":") for line in wire) >= 5, wire  # heartbeats are on

    async with AsyncCharter(beating.url, ADMIN_KEY, realm=realm, retry=FAST_RETRY) as charter:
        seen: list[tuple[str, str]] = []

        async def collect() -> None:
            async for event in charter._stream(path, Cursor("0")):
                seen.append((event.event, event.data))

        with pytest.raises(TimeoutError):
            await asyncio.wait_for(collect(), 1.0)  # some twenty heartbeats
    assert [name for name, _ in seen] == ["directive.created"]
    assert all(data for _, data in seen)

    with Charter(beating.url, ADMIN_KEY, realm=realm, retry=FAST_RETRY) as blocking:
        stream = blocking._stream(path, Cursor("0"))
        first = _next(stream)
        assert first.event == "directive.created"
        blocking.create(NewDirective(level="realm", title="Two", body="2"))
        second = _next(stream)  # not one of the heartbeats sent meanwhile
        assert second.event == "directive.created"
        assert second.data
        assert int(second.id) == int(first.id) + 1
        stream.close()


def test_follow_events_resumes_after_a_restart_with_heartbeats_on(
    beating: CharterServer,
) -> None:
    realm, node_id = _setup(beating)
    with Charter(beating.url, ADMIN_KEY, realm=realm, retry=FAST_RETRY) as charter:
        stream = charter.follow_events(after=0)
        created = _next(stream)
        assert created.type == "directive.created"
        time.sleep(0.3)  # heartbeats flow
        charter.update(node_id, Patch(body="v2"), expected_revision=1)
        changed = _next(stream)
        assert (changed.seq, changed.type) == (created.seq + 1, "directive.version_created")

        asyncio.run(beating.kill())  # gone at once, streams and all
        beating.start()
        charter.update(node_id, Patch(body="v3"), expected_revision=2)
        again = _next(stream)  # resumed after `changed`: nothing twice, nothing lost
        assert (again.seq, again.type) == (changed.seq + 1, "directive.version_created")
        stream.close()


def test_watch_yields_only_prompts_and_resumes_with_heartbeats_on(
    beating: CharterServer,
) -> None:
    realm, node_id = _setup(beating)
    with Charter(beating.url, ADMIN_KEY, realm=realm, retry=FAST_RETRY) as charter:
        stream = charter.watch("coder")
        first = _next(stream)
        assert first.text.endswith("v1")
        time.sleep(0.3)
        charter.update(node_id, Patch(body="v2"), expected_revision=1)
        second = _next(stream)
        assert second.text.endswith("v2")

        asyncio.run(beating.kill())  # gone at once, streams and all
        beating.start()
        charter.update(node_id, Patch(body="v3"), expected_revision=2)
        third = _next(stream)  # the prompt as it was on reconnection was v3: yielded once
        assert third.text.endswith("v3")
        assert len({first.composition_id, second.composition_id, third.composition_id}) == 3
        stream.close()


def test_the_heartbeat_setting_is_read_and_checked() -> None:
    assert Settings.from_env({}).heartbeat_seconds == 15.0
    assert Settings.from_env({"CHARTER_HEARTBEAT_SECONDS": "0.25"}).heartbeat_seconds == 0.25
    for bad in ("0", "-1", "nan", "soon"):
        with pytest.raises(ValueError, match="CHARTER_HEARTBEAT_SECONDS"):
            Settings.from_env({"CHARTER_HEARTBEAT_SECONDS": bad})
