"""Reads of immutable and append-only rows from a streaming replica, fenced (ADR 0013).

A replica answers what it has replayed; a row it lacks, a realm revision it has not reached,
or a replica that is down, is read from the primary, so a caller always sees its own writes,
however far the replica lags.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from charter.api import params
from charter.db import session
from charter.ids import new_directive_id
from charter.observability.metrics import REPLICA_OUTCOMES
from tests.support.api import Api, new_realm_id
from tests.support.replica import OwnReplica
from tests.support.streams import held_stream

pytestmark = pytest.mark.timeout(90)


def _counts(client: AsyncTestClient[Litestar]) -> dict[str, float]:
    registry = client.app.state.runtime.metrics.registry
    return {
        o: registry.get_sample_value("charter_replica_reads_total", {"outcome": o}) or 0.0
        for o in REPLICA_OUTCOMES
    }


def _more(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {o: after[o] - before[o] for o in REPLICA_OUTCOMES if after[o] != before[o]}


async def _version(api: Api, node: dict[str, Any], number: int) -> dict[str, Any]:
    response = await api.client.get(f"{api.base}/{node['id']}/versions/{number}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def test_a_fresh_replica_answers_versions_diffs_and_compositions(
    api: Api, replica: OwnReplica
) -> None:
    node = await api.create(title="Root", body="one", owner_agent_id="alpha")
    await api.patch(node, body="two")
    prompt = await api.client.get(f"/v1/realms/{api.realm}/agents/alpha/prompt")
    assert prompt.status_code == 200, prompt.text
    composition_id = prompt.json()["composition_id"]
    waited = await replica.caught_up()
    print(f"replicas: replayed the writes {waited * 1000:.0f} ms after the last one")
    before = _counts(api.client)

    assert (await _version(api, node, 1))["body"] == "one"
    diff = await api.client.get(f"{api.base}/{node['id']}/diff", params={"from": 1, "to": 2})
    assert diff.status_code == 200, diff.text
    assert "-one" in diff.json()["diff"]
    assert "+two" in diff.json()["diff"]
    resolved = await api.client.get(f"/v1/realms/{api.realm}/compositions/{composition_id}")
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["text"] == prompt.json()["text"]

    assert _more(before, _counts(api.client)) == {"replica": 3}


async def test_read_your_writes_holds_while_replay_is_paused(api: Api, replica: OwnReplica) -> None:
    node = await api.create(title="Root", body="one", owner_agent_id="alpha")
    await replica.caught_up()
    await replica.pause()
    try:
        before = _counts(api.client)
        changed = await api.patch(node, body="two")
        assert (await _version(api, changed, 2))["body"] == "two"
        diff = await api.client.get(f"{api.base}/{node['id']}/diff", params={"from": 1, "to": 2})
        assert diff.status_code == 200, diff.text
        assert "+two" in diff.json()["diff"]
        prompt = await api.client.get(f"/v1/realms/{api.realm}/agents/alpha/prompt")
        assert prompt.status_code == 200, prompt.text
        composition_id = prompt.json()["composition_id"]
        resolved = await api.client.get(f"/v1/realms/{api.realm}/compositions/{composition_id}")
        assert resolved.status_code == 200, resolved.text
        assert "two" in resolved.json()["text"]
        # Version 1 was replayed before the pause: the lagging replica still answers it.
        assert (await _version(api, node, 1))["body"] == "one"
        more = _more(before, _counts(api.client))
        assert more == {"not_replayed": 3, "replica": 1}, more
        # A version that exists nowhere is a 404 still, after the primary was asked too.
        missing = await api.client.get(f"{api.base}/{node['id']}/versions/9")
        assert missing.status_code == 404, missing.text
    finally:
        await replica.resume()
    await replica.caught_up()
    before = _counts(api.client)
    assert (await _version(api, changed, 2))["body"] == "two"
    assert _more(before, _counts(api.client)) == {"replica": 1}


@contextlib.contextmanager
def _statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The statements sent on `engine` inside the block."""
    sent: list[str] = []

    def log(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        sent.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", log)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", log)


def _history_reads(statements: list[str]) -> list[str]:
    """The fence, the directive check and (as "history") the page, of what was sent."""
    out = []
    for statement in statements:
        if statement.startswith(("SELECT realms.revision", "SELECT directives.revision")):
            out.append(statement.split(" \n", 1)[0])
        elif "ORDER BY events.seq DESC" in statement:
            out.append("history")
    return out


async def _history(api: Api, node: dict[str, Any], **query: Any) -> dict[str, Any]:
    response = await api.client.get(f"{api.base}/{node['id']}/history", params=query)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def _versions(api: Api, node: dict[str, Any]) -> list[int]:
    response = await api.client.get(f"{api.base}/{node['id']}/versions")
    assert response.status_code == 200, response.text
    return [v["version"] for v in response.json()["items"]]


async def test_a_fresh_replica_answers_history_version_lists_and_the_feed(
    api: Api, replica: OwnReplica
) -> None:
    node = await api.create(title="Root", body="one")
    for body in ("two", "three"):
        node = await api.patch(node, body=body)
    await replica.caught_up()
    before = _counts(api.client)

    db = api.client.app.state.runtime.db
    with _statements(db.engine) as primary, _statements(db.replicas[0].engine) as standby:
        first = await _history(api, node, limit=2)
    assert [e["version"] for e in first["items"]] == [3, 2]
    # The primary's part is the fence: one primary-key read of the realm revision (other
    # statements there are the process's background work: the relay, the due-work loop).
    assert _history_reads(primary) == ["SELECT realms.revision"], primary
    # The replica's: the realm setting, the fence, the directive, the page (the bootstrap key
    # names itself: no key read).
    assert len(standby) == 4, standby
    fence_and_page = ["SELECT realms.revision", "SELECT directives.revision", "history"]
    assert _history_reads(standby) == fence_and_page, standby
    with _statements(db.engine) as primary:
        rest = await _history(api, node, limit=2, cursor=first["next_cursor"])
    assert [e["version"] for e in rest["items"]] == [1]
    # A later page is fenced by its cursor: nothing of it on the primary.
    assert _history_reads(primary) == [], primary
    assert await _versions(api, node) == [3, 2, 1]
    assert [e["version"] for e in await api.events()] == [1, 2, 3]

    assert _more(before, _counts(api.client)) == {"replica": 4}


async def test_an_event_stream_catches_up_from_the_replica(api: Api, replica: OwnReplica) -> None:
    node = await api.create(title="Root", body="one")
    await api.patch(node, body="two")
    await replica.caught_up()
    before = _counts(api.client)
    url = f"/v1/realms/{api.realm}/events/stream?after=0"
    headers = {"Authorization": api.client.headers["Authorization"]}
    async with held_stream(api.client, url, headers) as stream:
        await stream.until_sent(b"id: 2\r\n")
    assert b"id: 1\r\n" in stream.body
    # The events up to the revision read when the stream opened: fenced by it, so no
    # primary read beyond that one.
    assert _more(before, _counts(api.client)) == {"replica": 1}


async def test_history_reads_your_writes_while_replay_is_paused(
    api: Api, replica: OwnReplica
) -> None:
    node = await api.create(title="Root", body="one")
    node = await api.patch(node, body="two")
    first = await _history(api, node, limit=1)
    await replica.caught_up()
    await replica.pause()
    try:
        before = _counts(api.client)
        changed = await api.patch(node, body="three")
        page = await _history(api, changed, limit=1)
        assert [e["version"] for e in page["items"]] == [3]  # the new event, first
        assert await _versions(api, changed) == [3, 2, 1]
        feed = await api.events()
        assert [e["version"] for e in feed] == [1, 2, 3]
        url = f"/v1/realms/{api.realm}/events/stream?after=0"
        headers = {"Authorization": api.client.headers["Authorization"]}
        async with held_stream(api.client, url, headers) as stream:
            await stream.until_sent(b"id: 3\r\n")
        assert _more(before, _counts(api.client)) == {"not_replayed": 4}
        # A page after a cursor depends on the cursor only: every event before it was
        # replayed, so the lagging replica answers it.
        older = await _history(api, node, cursor=first["next_cursor"])
        assert [e["version"] for e in older["items"]] == [1]
        assert _more(before, _counts(api.client)) == {"not_replayed": 4, "replica": 1}
        # A cursor past anything replayed is the primary's to answer: an empty page, no 404.
        far = await api.client.get(
            f"{api.base}/{node['id']}/history", params={"cursor": params.encode_cursor(10**17)}
        )
        assert far.status_code == 200, far.text
        assert [e["version"] for e in far.json()["items"]] == [3, 2, 1]
        assert _more(before, _counts(api.client)) == {"not_replayed": 5, "replica": 1}
    finally:
        await replica.resume()
    await replica.caught_up()
    before = _counts(api.client)
    page = await _history(api, changed, limit=1)
    assert [e["version"] for e in page["items"]] == [3]
    assert _more(before, _counts(api.client)) == {"replica": 1}


async def test_history_of_a_missing_directive_or_realm_is_a_404(
    api: Api, replica: OwnReplica
) -> None:
    node = await api.create(title="Root", body="one")
    await replica.caught_up()
    missing = await api.client.get(f"{api.base}/{new_directive_id()}/history")
    assert missing.status_code == 404, missing.text
    no_realm = await api.client.get(f"/v1/realms/{new_realm_id()}/directives/{node['id']}/history")
    assert no_realm.status_code == 404, no_realm.text
    bad = await api.client.get(f"{api.base}/{node['id']}/history", params={"cursor": "!!"})
    assert bad.status_code == 400, bad.text


async def test_a_dead_replica_costs_only_a_fallback(
    api: Api, replica: OwnReplica, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session, "REPLICA_REST_SECONDS", 1.0)
    node = await api.create(title="Root", body="one")
    await replica.caught_up()
    assert (await _version(api, node, 1))["body"] == "one"  # a pooled replica connection
    await replica.kill()
    try:
        before = _counts(api.client)
        started = time.monotonic()
        assert (await _version(api, node, 1))["body"] == "one"
        first = time.monotonic() - started
        for _ in range(5):  # resting: the replica is not tried again
            assert (await _version(api, node, 1))["body"] == "one"
            assert [e["version"] for e in (await _history(api, node))["items"]] == [1]
        assert _more(before, _counts(api.client)) == {"unavailable": 1}
        assert first < session.REPLICA_CONNECT_SECONDS + 1.0, first
    finally:
        await replica.start()
    await replica.caught_up()
    await asyncio.sleep(1.0)  # the rest is over: the replica is tried, and answers
    before = _counts(api.client)
    assert (await _version(api, node, 1))["body"] == "one"
    assert [e["version"] for e in (await _history(api, node))["items"]] == [1]
    assert _more(before, _counts(api.client)) == {"replica": 2}


async def test_a_dead_replica_costs_history_only_a_fallback(
    api: Api, replica: OwnReplica, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session, "REPLICA_REST_SECONDS", 1.0)
    node = await api.create(title="Root", body="one")
    await replica.caught_up()
    await _history(api, node)  # a pooled replica connection
    await replica.kill()
    try:
        before = _counts(api.client)
        started = time.monotonic()
        assert [e["version"] for e in (await _history(api, node))["items"]] == [1]
        first = time.monotonic() - started
        assert [e["version"] for e in (await _history(api, node))["items"]] == [1]
        assert _more(before, _counts(api.client)) == {"unavailable": 1}
        assert first < session.REPLICA_CONNECT_SECONDS + 1.0, first
    finally:
        await replica.start()
    await replica.caught_up()
