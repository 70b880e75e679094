"""A revoked key loses its open streams and long polls within a second (DESIGN §12).

Through the API (this process hears it at once), through the bus (a revocation another
process published), and straight in the database (the periodic re-check's safety net); for
both kinds of stream and for long polls, routed and answered before routing.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from charter.cache.names import revocation_channel
from charter.clock import utcnow
from charter.db.session import Database
from charter.settings import Settings
from charter.store import keys as key_store
from tests.support.api import Api
from tests.support.checks import assert_problem
from tests.support.live import open_watchers
from tests.support.streams import HeldStream, held_stream

REVOKED_WITHIN_SECONDS = 1.0
PROMPT_EVENT = b"event: prompt"
ROUTED = {"via": "router"}  # a query parameter the fast path does not read: always routed


async def _key(api: Api, role: str, **fields: Any) -> dict[str, Any]:
    body = {"role": role, "realms": [api.realm], **fields}
    response = await api.client.post("/v1/keys", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _bearer(key: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {key['key']}"}


async def _revoke(api: Api, key: dict[str, Any]) -> float:
    response = await api.client.delete(f"/v1/keys/{key['id']}")
    assert response.status_code == 204, response.text
    return time.monotonic()


async def _assert_ends_and_stays_quiet(
    api: Api, stream: HeldStream, revoked_at: float, node: dict[str, Any]
) -> None:
    """Ended within the bound, said why, and carried nothing of a later change."""
    ended_at = await stream.until_ended(REVOKED_WITHIN_SECONDS + 1.0)
    assert ended_at - revoked_at < REVOKED_WITHIN_SECONDS
    assert stream.body.endswith(b": key revoked\r\n\r\n")
    sent = stream.body
    await api.patch(node, body="after the revocation")
    await asyncio.sleep(0.1)
    assert stream.body == sent
    assert b"after the revocation" not in sent


async def test_a_prompt_stream_ends_when_its_key_is_revoked(api: Api) -> None:
    node = await api.create(title="Root", body="before", owner_agent_id="pilot")
    agent = await _key(api, "agent", agent_id="pilot")
    url = f"/v1/realms/{api.realm}/agents/pilot/prompt/stream"
    async with held_stream(api.client, url, _bearer(agent)) as stream:
        assert stream.status == 200
        await stream.until_sent(PROMPT_EVENT)
        revoked_at = await _revoke(api, agent)
        await _assert_ends_and_stays_quiet(api, stream, revoked_at, node)
    again = await api.client.get(url.removesuffix("/stream"), headers=_bearer(agent))
    assert_problem(again, 401, "unauthenticated")


async def test_an_event_stream_ends_when_its_key_is_revoked(api: Api) -> None:
    node = await api.create(title="Root", body="before")
    reader = await _key(api, "reader")
    url = f"/v1/realms/{api.realm}/events/stream?after=0"
    async with held_stream(api.client, url, _bearer(reader)) as stream:
        assert stream.status == 200
        await stream.until_sent(b"event: directive.created")
        revoked_at = await _revoke(api, reader)
        await _assert_ends_and_stays_quiet(api, stream, revoked_at, node)


async def _until_watchers(client: AsyncTestClient[Litestar], count: int) -> None:
    deadline = time.monotonic() + 10
    while (now := _watchers((await client.get("/metrics")).text)) != count:
        assert time.monotonic() < deadline, f"{now} watchers, never {count}"
        await asyncio.sleep(0.01)


def _watchers(text: str) -> int:
    return open_watchers(text)


@pytest.mark.parametrize("route", ["fast", "routed"])
async def test_a_long_poll_ends_401_when_its_key_is_revoked(api: Api, route: str) -> None:
    await api.create(title="Root", body="before", owner_agent_id="pilot")
    agent = await _key(api, "agent", agent_id="pilot")
    url = f"/v1/realms/{api.realm}/agents/pilot/prompt"
    first = await api.client.get(url, headers=_bearer(agent))  # cached, and the key known
    assert first.status_code == 200
    headers = {**_bearer(agent), "If-None-Match": first.headers["etag"]}
    query = "wait=20" if route == "fast" else "wait=20&via=router"
    before = _watchers((await api.client.get("/metrics")).text)
    async with held_stream(api.client, f"{url}?{query}", headers, started=False) as poll:
        await _until_watchers(api.client, before + 1)
        assert poll.status is None
        revoked_at = await _revoke(api, agent)
        answered_at = await poll.until_ended(REVOKED_WITHIN_SECONDS + 1.0)
    assert poll.status == 401
    assert json.loads(poll.body)["code"] == "unauthenticated"
    assert answered_at - revoked_at < REVOKED_WITHIN_SECONDS


async def test_a_revocation_heard_on_the_bus_ends_the_streams(api: Api, settings: Settings) -> None:
    """Another process revoked the key: all this one hears is the bus message."""
    if settings.redis_url is None:
        pytest.skip("the bus between processes is Redis")
    node = await api.create(title="Root", body="before", owner_agent_id="pilot")
    agent = await _key(api, "agent", agent_id="pilot")
    url = f"/v1/realms/{api.realm}/agents/pilot/prompt/stream"
    redis = Redis.from_url(settings.redis_url)
    try:
        async with held_stream(api.client, url, _bearer(agent)) as stream:
            await stream.until_sent(PROMPT_EVENT)
            # Only the message, not the row: the database's answer cannot be what ends it.
            await redis.publish(revocation_channel(settings.redis_prefix), agent["id"])
            revoked_at = time.monotonic()
            await _assert_ends_and_stays_quiet(api, stream, revoked_at, node)
    finally:
        await redis.aclose()


async def test_a_revocation_made_in_the_database_alone_ends_the_streams(
    api: Api, db: Database
) -> None:
    """No bus message at all (it was lost): the periodic re-check still ends them."""
    node = await api.create(title="Root", body="before", owner_agent_id="pilot")
    agent = await _key(api, "agent", agent_id="pilot")
    reader = await _key(api, "reader")
    prompt_url = f"/v1/realms/{api.realm}/agents/pilot/prompt/stream"
    events_url = f"/v1/realms/{api.realm}/events/stream?after=0"
    async with (
        held_stream(api.client, prompt_url, _bearer(agent)) as prompt,
        held_stream(api.client, events_url, _bearer(reader)) as events,
    ):
        await prompt.until_sent(PROMPT_EVENT)
        await events.until_sent(b"event: directive.created")
        async with db.transaction() as conn:
            await key_store.revoke(conn, agent["id"], utcnow())
            await key_store.revoke(conn, reader["id"], utcnow())
        revoked_at = time.monotonic()
        await _assert_ends_and_stays_quiet(api, prompt, revoked_at, node)
        await events.until_ended(REVOKED_WITHIN_SECONDS + 1.0)
        assert events.ended_at is not None
        assert events.ended_at - revoked_at < REVOKED_WITHIN_SECONDS


async def test_other_keys_keep_their_streams(api: Api) -> None:
    node = await api.create(title="Root", body="before", owner_agent_id="pilot")
    revoked = await _key(api, "agent", agent_id="pilot")
    kept = await _key(api, "agent", agent_id="pilot")
    url = f"/v1/realms/{api.realm}/agents/pilot/prompt/stream"
    async with (
        held_stream(api.client, url, _bearer(revoked)) as gone,
        held_stream(api.client, url, _bearer(kept)) as stays,
    ):
        await gone.until_sent(PROMPT_EVENT)
        await stays.until_sent(PROMPT_EVENT)
        await _revoke(api, revoked)
        await gone.until_ended(REVOKED_WITHIN_SECONDS + 1.0)
        await api.patch(node, body="after")
        await stays.until_sent(b"# Root\\n\\nafter")
        assert stays.ended_at is None
