"""Two deployments on one Redis (same db number) never see each other (CHARTER_REDIS_PREFIX).

Deployment A runs on the PostgreSQL test database, deployment B on a SQLite file of its own;
both have a realm of the same name with an agent of the same name, and different prefixes.
Nothing one does may reach the other: no invalidation, no tombstone, no recovery sweep.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from charter.app import create_app
from charter.cache.bus import RedisBus
from charter.cache.entries import decode
from charter.cache.names import entry_key
from charter.db.migrate import migrate
from charter.runtime import Runtime
from charter.settings import Settings
from tests.support.api import ADMIN_KEY, new_realm_id

REDIS_URL = os.environ.get("CHARTER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AGENT = "bot"
READY_SECONDS = 30.0


@asynccontextmanager
async def deployment(settings: Settings) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    """An app served on this event loop, once it listens to Redis and trusts it."""
    app = create_app(settings)
    async with app.lifespan():
        runtime: Runtime = app.state.runtime
        deadline = time.monotonic() + READY_SECONDS
        tier, bus = runtime.prompts.tier, runtime.bus
        assert tier is not None
        assert isinstance(bus, RedisBus)
        while not bus.subscribed.is_set() or tier.recovering:
            assert time.monotonic() < deadline, "the deployment never became ready"
            await asyncio.sleep(0.01)
        # Litestar's precise ASGI message types do not match httpx's loose ones; it is ASGI.
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://charter.test", headers=headers
        ) as http:
            yield runtime, http


class Side:
    """One deployment's view of the shared realm."""

    def __init__(self, runtime: Runtime, http: httpx.AsyncClient, realm: str) -> None:
        self.runtime = runtime
        self.http = http
        self.realm = realm
        self.prefix = runtime.settings.redis_prefix
        self.root: dict[str, Any] = {}

    async def setup(self, body: str) -> None:
        created = await self.http.post("/v1/realms", json={"id": self.realm})
        assert created.status_code == 201, created.text
        node = {"level": "realm", "title": "Root", "body": body, "owner_agent_id": AGENT}
        response = await self.http.post(f"/v1/realms/{self.realm}/directives", json=node)
        assert response.status_code == 201, response.text
        self.root = response.json()

    async def patch(self, body: str) -> None:
        response = await self.http.patch(
            f"/v1/realms/{self.realm}/directives/{self.root['id']}",
            json={"body": body},
            headers={"If-Match": f'"{self.root["revision"]}"'},
        )
        assert response.status_code == 200, response.text
        self.root = response.json()

    async def prompt(self) -> str:
        response = await self.http.get(f"/v1/realms/{self.realm}/agents/{AGENT}/prompt")
        assert response.status_code == 200, response.text
        composition_id: str = response.json()["composition_id"]
        return composition_id

    def local(self) -> str | None:
        entry = self.runtime.prompts.cached(self.realm, AGENT)
        return None if entry is None else entry.composition_id

    async def shared(self, redis: Redis) -> str | None:
        raw: Any = await redis.get(entry_key(self.realm, AGENT, self.prefix))
        entry = decode(raw if isinstance(raw, bytes) else None)
        return None if entry is None else entry.composition_id

    async def heard_everything_before(self) -> None:
        """Once this returns, any message published to this deployment before the call has
        been delivered: Redis delivers in publish order, and this one comes last."""
        with self.runtime.hub.watch_agent(self.realm, "sentinel") as watch:
            await self.runtime.bus.publish(self.realm, ["sentinel"], 0)
            assert await watch.wait(5.0), "the deployment's own message never arrived"


@pytest.fixture
def own_sqlite(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'b.db'}"
    migrate(url, url)
    return url


async def test_two_deployments_on_one_redis_never_interact(
    postgres_urls: tuple[str, str], own_sqlite: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    common: dict[str, Any] = {"redis_url": REDIS_URL, "bootstrap_key": ADMIN_KEY}
    settings_a = Settings(
        database_url=postgres_urls[1],
        redis_prefix=f"dep-a-{tag}",
        rate_limit_per_second=0,
        **common,
    )
    settings_b = Settings(database_url=own_sqlite, redis_prefix=f"dep-b-{tag}", **common)
    realm = new_realm_id()
    redis = Redis.from_url(REDIS_URL)
    try:
        async with (
            deployment(settings_a) as (runtime_a, http_a),
            deployment(settings_b) as (
                runtime_b,
                http_b,
            ),
        ):
            a, b = Side(runtime_a, http_a, realm), Side(runtime_b, http_b, realm)
            await a.setup("Deployment A's text")
            await b.setup("Deployment B's text")
            a_first, b_first = await a.prompt(), await b.prompt()
            assert a_first != b_first
            assert (await a.shared(redis), await b.shared(redis)) == (a_first, b_first)

            # A changes its realm a few times: its invalidations (and tombstones, stamped above
            # anything B's realm has reached) must not touch B.
            for n in range(3):
                await a.patch(f"Deployment A's text, take {n}")
            await b.heard_everything_before()
            assert b.local() == b_first, "A's invalidation dropped B's local entry"
            assert await b.shared(redis) == b_first, "A's tombstone replaced B's Redis entry"
            assert await b.prompt() == b_first

            # B changes its realm at a lower revision than A's tombstones: its new entry is
            # stored (no tombstone of A's refuses it), and A keeps its own entry.
            a_latest = await a.prompt()
            await b.patch("Deployment B's text, changed")
            b_latest = await b.prompt()
            assert b_latest != b_first
            assert await b.shared(redis) == b_latest, "A's tombstone refused B's refill"
            await a.heard_everything_before()
            assert a.local() == a_latest, "B's invalidation dropped A's local entry"
            assert await a.shared(redis) == a_latest

            # A's recovery sweep deletes A's prompt entries only.
            tier_a = runtime_a.prompts.tier
            assert tier_a is not None
            assert await tier_a.drop_all() >= 1
            assert await a.shared(redis) is None
            assert await b.shared(redis) == b_latest

            # Every key either wrote for the realm carries its own prefix.
            keys = [key.decode() async for key in redis.scan_iter(match=f"*{{{realm}}}*")]
            assert keys
            assert all(key.startswith((f"dep-a-{tag}:", f"dep-b-{tag}:")) for key in keys), keys
    finally:
        async for key in redis.scan_iter(match=f"*{{{realm}}}*"):
            await redis.delete(key)
        await redis.aclose()


def test_the_prefix_defaults_to_charter_and_refuses_what_would_cross_deployments() -> None:
    assert Settings.from_env({}).redis_prefix == "charter"
    assert Settings.from_env({"CHARTER_REDIS_PREFIX": "team-a:prod"}).redis_prefix == "team-a:prod"
    for bad in ("", "a{b}", "a*", "a?", "a[b]", "a b", "x" * 65):
        with pytest.raises(ValueError, match="CHARTER_REDIS_PREFIX"):
            Settings(redis_prefix=bad)


def test_serve_refuses_a_bad_prefix_and_names_the_setting() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARTER_")}
    env["CHARTER_REDIS_PREFIX"] = "team{a}"
    done = subprocess.run(
        [sys.executable, "-m", "charter", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "CHARTER_REDIS_PREFIX 'team{a}'" in done.stderr
    assert "Traceback" not in done.stderr
