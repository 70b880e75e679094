"""Per-key rate limiting: 429 `rate-limited` with Retry-After; off by default when embedded."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from charter import ratelimit
from charter.app import create_app
from charter.errors import RateLimited
from charter.ratelimit import RateLimiter
from charter.settings import Settings
from tests.support.api import ADMIN_KEY
from tests.support.checks import assert_problem

RATE = 1.0  # per second: a burst of 2, and about a second per token after that
MAX_ATTEMPTS = 20  # far more than the bucket holds, unless each request took half a second


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """An app on the same database whose keys get RATE requests a second."""
    app = create_app(dataclasses.replace(settings, rate_limit_per_second=RATE))
    async with AsyncTestClient(app) as test_client:
        yield test_client


async def _reader_key(client: AsyncTestClient[Litestar]) -> str:
    body = {"role": "reader", "realms": ["*"], "name": "rate-limited reader"}
    response = await client.post("/v1/keys", json=body)
    assert response.status_code == 201, response.text
    secret: str = response.json()["key"]
    return secret


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_a_burst_beyond_the_bucket_is_429_with_retry_after_per_key(
    client: AsyncTestClient[Litestar], limited: AsyncTestClient[Litestar]
) -> None:
    reader = await _reader_key(client)  # minted through the unlimited app
    statuses = []
    for _ in range(MAX_ATTEMPTS):
        response = await limited.get("/v1/realms", headers=_bearer(reader))
        statuses.append(response.status_code)
        if response.status_code != 200:
            break
    assert statuses[:2] == [200, 200], statuses  # the bucket holds a burst of two
    assert_problem(response, 429, "rate-limited")
    assert int(response.headers["Retry-After"]) >= 1
    # Another key has a bucket of its own.
    other = await limited.get("/v1/realms", headers=_bearer(ADMIN_KEY))
    assert other.status_code == 200, other.text


async def test_an_unknown_key_is_401_not_rate_limited(limited: AsyncTestClient[Litestar]) -> None:
    for _ in range(5):
        response = await limited.get("/v1/realms", headers=_bearer("chk_nobody"))
        assert_problem(response, 401, "unauthenticated")


def test_rate_limiting_is_off_by_default_on_sqlite_and_on_for_postgres() -> None:
    assert Settings(database_url="sqlite+aiosqlite:///x").rate_limit == 0
    postgres = Settings(database_url="postgresql+asyncpg://charter_app@127.0.0.1/charter")
    assert postgres.rate_limit > 0
    assert Settings(database_url="sqlite+aiosqlite:///x", rate_limit_per_second=5).rate_limit == 5
    env = {"CHARTER_DATABASE_URL": "sqlite+aiosqlite:///x", "CHARTER_RATE_LIMIT": "3"}
    assert Settings.from_env(env).rate_limit == 3


def test_the_embedded_default_limiter_never_refuses() -> None:
    limiter = RateLimiter(Settings(database_url="sqlite+aiosqlite:///x").rate_limit)
    assert not limiter.enabled
    assert all(limiter.take("k") == 0 for _ in range(10_000))


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    """A hand-driven clock for charter.ratelimit alone (the real `time` module is untouched)."""
    fake = _Clock()
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(monotonic=fake.monotonic))
    return fake


def test_the_bucket_refills_at_the_rate_up_to_the_burst(clock: _Clock) -> None:
    limiter = RateLimiter(per_second=2.0)  # burst 4
    assert [limiter.take("k") for _ in range(4)] == [0, 0, 0, 0]
    assert limiter.take("k") == pytest.approx(0.5)  # a token comes back every half second
    clock.now += 0.25
    assert limiter.take("k") == pytest.approx(0.25)
    clock.now += 0.25
    assert limiter.take("k") == 0
    assert limiter.take("k") == pytest.approx(0.5)
    clock.now += 3600  # idle for an hour: the bucket holds no more than its burst
    assert [limiter.take("k") for _ in range(4)] == [0, 0, 0, 0]
    assert limiter.take("k") > 0


def test_each_key_has_its_own_bucket(clock: _Clock) -> None:
    limiter = RateLimiter(per_second=1.0, burst=1.0)
    assert limiter.take("a") == 0
    assert limiter.take("a") == pytest.approx(1.0)
    assert limiter.take("b") == 0
    clock.now += 1.0
    assert limiter.take("a") == 0


def test_retry_after_is_whole_seconds_and_at_least_one() -> None:
    assert RateLimited(0.01).retry_after == 1
    assert RateLimited(1.0).retry_after == 1
    assert RateLimited(1.2).retry_after == 2
