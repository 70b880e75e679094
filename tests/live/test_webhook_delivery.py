"""Webhook delivery by real `charter serve` processes to a real receiver on loopback.

Every event, in feed order, when the receiver is up; all of them after it was down; none lost
when the server is killed mid-delivery (the repeat carries the same `webhook-id`); a slow
receiver holds up neither another webhook nor the writes; two servers never deliver one
webhook at once; after the retry horizon the webhook is disabled, with `webhook.disabled`.
On PostgreSQL (as the app role, under row-level security) and, where one process can show
it, on SQLite.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from charter.__main__ import main
from charter.cli import exits
from charter.client import NewDirective
from tests.support.api import new_realm_id
from tests.support.receiver import Received, Receiver
from tests.support.servers import CharterServer, StartServer

pytestmark = pytest.mark.timeout(90)

# Short enough for a test to see the end of it; long enough for an outage test to come back
# before it (the backoff waits at most an eighth of it: 0.9 s).
RETRY_HOURS = "0.002"  # 7.2 s
WEBHOOK_ENV = {
    "CHARTER_WEBHOOK_ALLOW_PRIVATE": "1",
    "CHARTER_WEBHOOK_RETRY_HOURS": RETRY_HOURS,
    "CHARTER_WEBHOOK_TIMEOUT_SECONDS": "1",
}
BACKENDS = ["pg", "sqlite"]


@pytest.fixture(scope="module")
async def pg_server(start_server: StartServer) -> CharterServer:
    return await start_server(extra_env=WEBHOOK_ENV)


@pytest.fixture(scope="module")
async def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[CharterServer]:
    settings = {k.removeprefix("CHARTER_").lower(): v for k, v in WEBHOOK_ENV.items()}
    server = CharterServer.on_sqlite(tmp_path_factory.mktemp("webhooks-sqlite"), **settings)
    with server:
        await server.astart()
        yield server


@pytest.fixture(params=BACKENDS)
def server(request: pytest.FixtureRequest) -> CharterServer:
    found: CharterServer = request.getfixturevalue(f"{request.param}_server")
    return found


class Realm:
    """One fresh realm on one server: writes, the feed, webhooks."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.id = new_realm_id()
        self.base = f"/v1/realms/{self.id}"
        self.hooks: list[str] = []

    async def create(self) -> Realm:
        response = await self.http.post("/v1/realms", json={"id": self.id})
        assert response.status_code == 201, response.text
        return self

    async def hook(self, receiver: Receiver, events: list[str] | None = None) -> dict[str, Any]:
        body = {"url": receiver.url, "events": events or ["*"]}
        response = await self.http.post(f"{self.base}/webhooks", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        receiver.secret = created["secret"]
        self.hooks.append(created["id"])
        return created

    async def show(self, hook: dict[str, Any]) -> dict[str, Any]:
        response = await self.http.get(f"{self.base}/webhooks/{hook['id']}")
        assert response.status_code == 200, response.text
        shown: dict[str, Any] = response.json()
        return shown

    async def attempts(self, hook: dict[str, Any]) -> list[dict[str, Any]]:
        response = await self.http.get(f"{self.base}/webhooks/{hook['id']}/deliveries?limit=500")
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def node(self, **fields: Any) -> dict[str, Any]:
        body = {"level": "realm", "title": "Title", "body": "Body", **fields}
        response = await self.http.post(f"{self.base}/directives", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def patch(self, node: dict[str, Any], **fields: Any) -> dict[str, Any]:
        response = await self.http.patch(
            f"{self.base}/directives/{node['id']}",
            json=fields,
            headers={"If-Match": f'"{node["revision"]}"'},
        )
        assert response.status_code == 200, response.text
        patched: dict[str, Any] = response.json()
        return patched

    async def writes(self, count: int, parallel: int = 4) -> None:
        """`count` events: creates, then text changes, `parallel` directives at a time."""
        nodes = await asyncio.gather(*(self.node() for _ in range(parallel)))
        for round_ in range((count - parallel) // parallel):
            nodes = await asyncio.gather(*(self.patch(n, body=f"v{round_}") for n in nodes))

    async def feed(self) -> list[dict[str, Any]]:
        response = await self.http.get(f"{self.base}/events?limit=500")
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def drop_hooks(self) -> None:
        """Tests leave no webhook behind for later servers on the database to retry."""
        for hook_id in self.hooks:
            await self.http.delete(f"{self.base}/webhooks/{hook_id}")


@pytest.fixture
async def realm(server: CharterServer) -> AsyncIterator[Realm]:
    async with server.http() as http:
        made = await Realm(http).create()
        try:
            yield made
        finally:
            await made.drop_hooks()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as running:
        yield running


def in_feed_order(got: list[Received], feed: list[dict[str, Any]]) -> None:
    """Exactly the feed, in its order, each event once, each a verified delivery."""
    assert [r.event for r in got] == feed
    assert len({r.message_id for r in got}) == len(got)


async def until(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_every_event_in_feed_order_while_the_receiver_is_up(
    realm: Realm, receiver: Receiver
) -> None:
    await realm.hook(receiver)
    await realm.writes(24)
    feed = await realm.feed()
    assert len(feed) == 24
    in_feed_order(await receiver.wait_for(len(feed)), feed)
    await asyncio.sleep(0.3)
    assert len(receiver.got) == len(feed)  # and nothing more
    assert receiver.forged == []


async def test_every_event_after_the_receiver_comes_back(realm: Realm, receiver: Receiver) -> None:
    hook = await realm.hook(receiver)
    await receiver.stop()
    await realm.writes(8)
    await until(lambda: _failed_at_least(realm, hook, 2), 10, "no failed attempt while it was down")
    await receiver.start()
    feed = await realm.feed()
    in_feed_order(await receiver.wait_for(len(feed)), feed)
    attempts = await realm.attempts(hook)
    failed = [a for a in attempts if a["status_code"] is None]
    assert {a["seq"] for a in failed} == {feed[0]["seq"]}  # nothing past the first, meanwhile
    assert all(a["error"] for a in failed)
    first = sorted((a for a in attempts if a["seq"] == feed[0]["seq"]), key=lambda a: a["id"])
    assert [a["attempt"] for a in first] == list(range(1, len(first) + 1))
    assert first[-1]["status_code"] == 204
    shown = await realm.show(hook)
    assert (shown["state"], shown["failures"], shown["delivered_seq"]) == (
        "active",
        0,
        feed[-1]["seq"],
    )


async def _failed_at_least(realm: Realm, hook: dict[str, Any], count: int) -> bool:
    return len(await realm.attempts(hook)) >= count


async def test_a_kill_mid_delivery_loses_nothing(
    server: CharterServer, realm: Realm, receiver: Receiver
) -> None:
    await realm.hook(receiver)
    receiver.delay = 0.3  # each delivery is in flight long enough to be killed in
    await realm.writes(12)
    feed = await realm.feed()
    # Killed while a delivery is in flight: the receiver has it, the server has not logged it.
    await until(lambda: _in_flight(receiver, 3), 15, "deliveries did not start")
    await server.kill()
    await server.astart()
    receiver.delay = 0.0
    await until(lambda: _has_all(receiver, feed), 30, "not every event after the restart")
    by_id: dict[str, list[Received]] = {}
    for received in receiver.got:
        by_id.setdefault(received.message_id, []).append(received)
    # A repeat is the same message: the same id, the same body.
    assert all(len({r.body for r in repeats}) == 1 for repeats in by_id.values())
    assert len(receiver.got) > len(feed), "the delivery in flight was not repeated"
    unique = [r.event for r in _first_of_each(receiver.got)]
    assert unique == feed
    # The order held through the crash: after the repeat, the feed goes on from there.
    assert _resumes_in_order(receiver.seqs()), receiver.seqs()


def _resumes_in_order(seqs: list[int]) -> bool:
    """Each seq is the next one, or a repeat of one already sent (at most the crash's)."""
    seen: list[int] = []
    for seq in seqs:
        if seq in seen:
            continue
        if seen and seq < seen[-1]:
            return False
        seen.append(seq)
    return True


def _first_of_each(got: list[Received]) -> list[Received]:
    seen: set[str] = set()
    first = []
    for received in got:
        if received.message_id not in seen:
            seen.add(received.message_id)
            first.append(received)
    return first


async def _in_flight(receiver: Receiver, done: int) -> bool:
    return len(receiver.got) >= done and receiver.requests > len(receiver.got)


async def _has_all(receiver: Receiver, feed: list[dict[str, Any]]) -> bool:
    return {r.event["seq"] for r in receiver.got} >= {e["seq"] for e in feed}


# --- PostgreSQL: several webhooks and processes -------------------------------------------------


@pytest.fixture
async def pg_realm(pg_server: CharterServer) -> AsyncIterator[Realm]:
    async with pg_server.http() as http:
        made = await Realm(http).create()
        try:
            yield made
        finally:
            await made.drop_hooks()


async def test_a_slow_receiver_delays_neither_another_webhook_nor_the_writes(
    pg_realm: Realm,
) -> None:
    async with Receiver(delay=0.8) as slow, Receiver() as fast:
        await pg_realm.hook(slow)
        await pg_realm.hook(fast)
        await pg_realm.node()
        await until(lambda: _busy(slow), 5, "the slow receiver got nothing")
        timings = []
        for _ in range(5):
            started = time.monotonic()
            await pg_realm.node()
            timings.append(time.monotonic() - started)
        written = time.monotonic()
        feed = await pg_realm.feed()
        got = await fast.wait_for(len(feed), 5)
        in_feed_order(got, feed)
        # The fast receiver had them all while the slow one had at most two.
        assert got[-1].at - written < 1.0
        assert len(slow.got) <= 2
        assert max(timings) < 0.5, timings
        in_feed_order(await slow.wait_for(len(feed), 15), feed)


async def _busy(receiver: Receiver) -> bool:
    return receiver.requests > 0


async def test_two_servers_deliver_each_event_once_in_order(
    start_server: StartServer, pg_server: CharterServer, receiver: Receiver
) -> None:
    other = await start_server(extra_env=WEBHOOK_ENV)
    async with pg_server.http() as http_a, other.http() as http_b:
        a = await Realm(http_a).create()
        b = Realm(http_b)
        b.id, b.base = a.id, a.base
        try:
            await a.hook(receiver)
            await asyncio.gather(a.writes(16), b.writes(16))
            feed = await a.feed()
            assert len(feed) == 32
            in_feed_order(await receiver.wait_for(len(feed)), feed)
            await asyncio.sleep(0.5)
            assert len(receiver.got) == len(feed)
        finally:
            await a.drop_hooks()
            other.stop()


async def test_after_the_retry_horizon_the_webhook_is_disabled(pg_realm: Realm) -> None:
    async with Receiver() as dead, Receiver() as watcher:
        await dead.stop()
        hook = await pg_realm.hook(dead)
        await pg_realm.hook(watcher, ["webhook.disabled"])
        await pg_realm.node()
        [told] = await watcher.wait_for(1, 20)
        assert told.event["type"] == "webhook.disabled"
        assert told.event["directive_id"] == hook["id"]
        assert told.event["payload"]["webhook_id"] == hook["id"]
        shown = await pg_realm.show(hook)
        assert shown["state"] == "disabled"
        assert shown["disabled_at"] is not None
        assert shown["delivered_seq"] == 0
        attempts = await pg_realm.attempts(hook)
        assert len(attempts) >= 3
        assert all(a["status_code"] is None for a in attempts)
        # Backoff: the waits between attempts grow.
        times = sorted(a["attempted_at"] for a in attempts)
        assert times[-1] > times[0]

        # Enabled again, it delivers from where it stood: nothing it wanted is lost.
        await dead.start()
        enabled = await pg_realm.http.post(f"{pg_realm.base}/webhooks/{hook['id']}/enable")
        assert enabled.status_code == 200, enabled.text
        assert enabled.json()["state"] == "active"
        feed = await pg_realm.feed()
        in_feed_order(await dead.wait_for(len(feed), 10), feed)


# --- the Python client and the CLI --------------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out, _ = capsys.readouterr()
    return code, out


async def test_the_client_and_the_cli(
    sqlite_server: CharterServer,
    receiver: Receiver,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    realm = new_realm_id()
    with sqlite_server.charter(realm) as charter:
        charter.create_realm(realm)
        monkeypatch.setenv("CHARTER_URL", sqlite_server.url)
        monkeypatch.setenv("CHARTER_KEY", sqlite_server.key or "")
        monkeypatch.setenv("CHARTER_REALM", realm)
        code, out = run_cli(capsys, "webhooks", "add", receiver.url, "--event", "directive.created")
        assert code == exits.OK
        receiver.secret = out.strip()
        assert receiver.secret.startswith("whsec_")
        [hook] = charter.webhooks().items
        assert hook.events == ["directive.created"]
        charter.create(NewDirective(level="realm", title="T", body="B"))
        [got] = await receiver.wait_for(1)
        code, out = run_cli(capsys, "webhooks", "list")
        assert (code, out.split()[0]) == (exits.OK, hook.id)
        [attempt] = charter.deliveries(hook.id).items
        assert attempt.status_code == 204
        assert attempt.message_id == got.message_id
        code, out = run_cli(capsys, "webhooks", "retry", hook.id, attempt.id)
        assert code == exits.OK, out
        assert (await receiver.wait_for(2))[1].message_id == got.message_id
        code, out = run_cli(capsys, "webhooks", "deliveries", hook.id, "--json")
        assert [a["manual"] for a in json.loads(out)["items"]] == [True, False]
        created = charter.create_webhook(receiver.url, agents=["coder-1"])
        assert created.secret is not None
        assert charter.webhook(created.id).agents == ["coder-1"]
        code, _ = run_cli(capsys, "webhooks", "rm", hook.id)
        assert code == exits.OK
        charter.delete_webhook(created.id)
        assert charter.webhooks().items == []
        code, _ = run_cli(capsys, "webhooks", "rm", hook.id)
        assert code == exits.NOT_FOUND
