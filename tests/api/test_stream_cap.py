"""A key holds at most CHARTER_MAX_STREAMS_PER_KEY streams and long polls at once, per
process: the next one is 429 `rate-limited` with Retry-After, and a closed one frees its
place."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from charter.app import create_app
from charter.settings import Settings
from tests.support.api import new_realm_id
from tests.support.live import open_watchers
from tests.support.streams import HeldStream, held_stream

CAP = 2


@pytest.fixture
async def capped(settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """An app on the same database whose keys may hold CAP streams and long polls."""
    app = create_app(dataclasses.replace(settings, max_streams_per_key=CAP))
    async with AsyncTestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {settings.bootstrap_key}"
        yield client


async def _world(client: AsyncTestClient[Litestar]) -> tuple[str, dict[str, str], dict[str, str]]:
    """A realm with agent `pilot`'s prompt; an agent key and a reader key for it."""
    realm = new_realm_id()
    assert (await client.post("/v1/realms", json={"id": realm})).status_code == 201
    node = {"level": "realm", "title": "Root", "body": "b", "owner_agent_id": "pilot"}
    assert (await client.post(f"/v1/realms/{realm}/directives", json=node)).status_code == 201
    made = []
    for body in (
        {"role": "agent", "realms": [realm], "agent_id": "pilot"},
        {"role": "reader", "realms": [realm]},
    ):
        response = await client.post("/v1/keys", json=body)
        assert response.status_code == 201, response.text
        made.append({"Authorization": f"Bearer {response.json()['key']}"})
    return realm, made[0], made[1]


def _assert_refused(stream: HeldStream) -> None:
    assert stream.status == 429, stream.body
    problem = json.loads(stream.body)
    assert problem["code"] == "rate-limited"
    assert problem["status"] == 429


async def _open(
    stack: AsyncExitStack, client: AsyncTestClient[Litestar], url: str, headers: dict[str, str]
) -> HeldStream:
    return await stack.enter_async_context(held_stream(client, url, headers))


async def test_past_the_cap_a_stream_is_429_with_retry_after(
    capped: AsyncTestClient[Litestar],
) -> None:
    realm, agent, reader = await _world(capped)
    prompt_stream = f"/v1/realms/{realm}/agents/pilot/prompt/stream"
    events_stream = f"/v1/realms/{realm}/events/stream"
    async with AsyncExitStack() as stack:
        held = [await _open(stack, capped, prompt_stream, agent) for _ in range(CAP)]
        assert [s.status for s in held] == [200] * CAP
        refused = await _open(stack, capped, prompt_stream, agent)
        _assert_refused(refused)
        response = await capped.get(prompt_stream.removesuffix("/stream"), headers=agent)
        assert response.status_code == 200  # an ordinary read is not held: not capped
        # The cap is the key's: another key still opens its own.
        assert (await _open(stack, capped, events_stream, reader)).status == 200
        await held[0].close()
        assert (await _open(stack, capped, prompt_stream, agent)).status == 200


async def test_the_refusal_says_when_to_retry(capped: AsyncTestClient[Litestar]) -> None:
    realm, _, reader = await _world(capped)
    url = f"/v1/realms/{realm}/events/stream"
    async with AsyncExitStack() as stack:
        for _ in range(CAP):
            await _open(stack, capped, url, reader)
        # The test client buffers whole responses: a refused stream is a complete answer.
        response = await capped.get(url, headers=reader)
    assert response.status_code == 429
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "rate-limited"
    assert int(response.headers["retry-after"]) >= 1
    counted = (await capped.get("/metrics")).text
    assert 'charter_rejections_total{reason="stream_cap"} 1.0' in counted


@pytest.mark.parametrize("route", ["fast", "routed"])
async def test_long_polls_count_against_the_cap(
    capped: AsyncTestClient[Litestar], route: str
) -> None:
    realm, agent, _ = await _world(capped)
    url = f"/v1/realms/{realm}/agents/pilot/prompt"
    first = await capped.get(url, headers=agent)  # cached, and the key known: the fast path
    polling = {**agent, "If-None-Match": first.headers["etag"]}
    # A hung-up long poll is held until its wait ends (nothing listens for the hang-up).
    query = "wait=5" if route == "fast" else "wait=5&via=router"
    async with AsyncExitStack() as stack:
        for _ in range(CAP):
            await stack.enter_async_context(
                held_stream(capped, f"{url}?{query}", polling, started=False)
            )
        await _until_held(capped, CAP)
        refused = await _open(stack, capped, f"{url}?{query}", polling)
        _assert_refused(refused)
        _assert_refused(await _open(stack, capped, f"{url}/stream", agent))


async def test_concurrent_opens_never_pass_the_cap(capped: AsyncTestClient[Litestar]) -> None:
    realm, _, reader = await _world(capped)
    url = f"/v1/realms/{realm}/events/stream"
    attempts = 12
    async with AsyncExitStack() as stack:
        opened = await asyncio.gather(*(_open(stack, capped, url, reader) for _ in range(attempts)))
        statuses = sorted(s.status for s in opened if s.status is not None)
    assert statuses == [200] * CAP + [429] * (attempts - CAP)


async def _until_held(client: AsyncTestClient[Litestar], count: int) -> None:
    for _ in range(1000):
        if open_watchers((await client.get("/metrics")).text) == count:
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"never {count} held")


def test_the_cap_and_the_shutdown_timeout_are_settings() -> None:
    assert Settings().max_streams_per_key == 100
    assert Settings.from_env({"CHARTER_MAX_STREAMS_PER_KEY": "7"}).max_streams_per_key == 7
    assert Settings.from_env({"CHARTER_MAX_STREAMS_PER_KEY": "0"}).max_streams_per_key == 0
    assert Settings().shutdown_timeout_seconds == 4
    assert Settings.from_env({"CHARTER_SHUTDOWN_TIMEOUT": "9"}).shutdown_timeout_seconds == 9
