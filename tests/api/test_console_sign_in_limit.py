"""Guessing keys at the console's sign-in is throttled: after 5 failed sign-ins in a minute from
one client address the form answers 429 with Retry-After, a right key included, until the
window passes (docs/console.md). In-process, on both backends; the clock is the limit's own,
moved by the test, so that no test sleeps for a minute."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from charter.ratelimit import FailureLimit
from charter.runtime import Runtime
from tests.support.api import Api
from tests.support.console import Browser, browsing

WINDOW = 60.0
LIMIT = 5


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(client: AsyncTestClient[Litestar]) -> Iterator[Clock]:
    """A fresh limit on the app's runtime, on a clock of the test's; the app's own limit is
    put back afterwards (the test client's address is the same for every test)."""
    runtime: Runtime = client.app.state.runtime
    kept = runtime.sign_ins
    moved = Clock()
    runtime.sign_ins = FailureLimit(LIMIT, WINDOW, clock=moved)
    try:
        yield moved
    finally:
        runtime.sign_ins = kept


@pytest.fixture
def browser(client: AsyncTestClient[Litestar]) -> Iterator[Browser]:
    yield from browsing(client)


async def _key(api: Api, role: str) -> str:
    made = await api.client.post("/v1/keys", json={"role": role, "realms": [api.realm]})
    assert made.status_code == 201, made.text
    secret: str = made.json()["key"]
    return secret


_REFUSALS = re.compile(r'^charter_rejections_total\{reason="sign_in_limit"\} (\S+)$', re.M)


def _refusals(metrics: httpx.Response) -> float:
    found = _REFUSALS.search(metrics.text)
    return 0.0 if found is None else float(found.group(1))


def _assert_sign_in_page(text: str) -> None:
    """The sign-in form again, its field still named `API key`."""
    assert '<label for="key">API key</label>' in text
    assert '<input id="key" name="key" type="password"' in text


async def test_wrong_keys_are_throttled_and_then_a_right_key_too(
    browser: Browser, api: Api, clock: Clock
) -> None:
    right = await _key(api, "operator")
    counted = _refusals(await api.client.get("/metrics"))
    for attempt in range(LIMIT):
        answer = await browser.post("/console/sign-in", data={"key": f"chk_wrong_{attempt}"})
        assert answer.status_code == 401, attempt
        assert "unknown or revoked" in answer.text
        assert "Retry-After" not in answer.headers
        clock.now += 1.0
    for sent in ("chk_wrong_again", right):  # past the limit, a right key is refused too
        refused = await browser.post("/console/sign-in", data={"key": sent})
        assert refused.status_code == 429
        assert refused.headers["content-type"].startswith("text/html")
        # The first failure was 5 s ago: the window lets the next try in 55 s.
        assert refused.headers["Retry-After"] == "55"
        text = html.unescape(refused.text)
        assert '<p class="alert" role="alert">Too many failed sign-ins' in text
        assert "Wait 55 s" in text
        _assert_sign_in_page(text)
        assert sent not in text  # never echoed
        assert "charter_session" not in refused.headers.get("set-cookie", "")
        assert browser.cookie is None
    assert (await browser.get("/console/realms")).status_code == 303  # not signed in
    assert _refusals(await api.client.get("/metrics")) == counted + 2
    clock.now += 54.5
    assert (await browser.post("/console/sign-in", data={"key": right})).status_code == 429
    clock.now += 0.5  # the first failure leaves the window: one more try
    signed_in = await browser.post("/console/sign-in", data={"key": right})
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/console/realms"
    assert (await browser.get("/console/realms")).status_code == 200


async def test_what_is_not_a_guess_does_not_count(browser: Browser, api: Api, clock: Clock) -> None:
    """An empty field, an agent key, a right key and a refused CSRF post are no guesses."""
    agent = await api.client.post(
        "/v1/keys", json={"role": "agent", "realms": [api.realm], "agent_id": "pilot"}
    )
    assert agent.status_code == 201
    right = await _key(api, "reader")
    for _ in range(LIMIT + 1):
        assert (await browser.post("/console/sign-in", data={"key": ""})).status_code == 400
        refused = await browser.post("/console/sign-in", data={"key": agent.json()["key"]})
        assert refused.status_code == 401
        assert "agent key" in refused.text
        forged = await browser.client.post(
            "/console/sign-in",
            data={"key": "chk_wrong"},
            headers={"Origin": "http://evil.test"},
            follow_redirects=False,
        )
        assert forged.status_code == 403
    browser.client.cookies.clear()
    for _ in range(LIMIT - 1):
        assert (
            await browser.post("/console/sign-in", data={"key": "chk_wrong"})
        ).status_code == 401
    assert (await browser.post("/console/sign-in", data={"key": right})).status_code == 303
    # The right key did not wipe the four failures: one more, and the address is throttled.
    assert (await browser.post("/console/sign-in", data={"key": "chk_wrong"})).status_code == 401
    assert (await browser.post("/console/sign-in", data={"key": right})).status_code == 429


def test_the_limit_counts_per_client_and_forgets_the_oldest_client() -> None:
    clock = Clock()
    limit = FailureLimit(limit=2, window=10.0, clients=2, clock=clock)
    for _ in range(2):
        limit.failed("10.0.0.1")
    assert limit.wait("10.0.0.1") == 10.0
    assert limit.wait("10.0.0.2") == 0.0  # another address is not affected
    clock.now += 4
    limit.failed("10.0.0.2")
    limit.failed("10.0.0.2")
    assert limit.wait("10.0.0.1") == 6.0
    assert limit.wait("10.0.0.2") == 10.0
    limit.failed("10.0.0.3")  # a third client: the one that failed longest ago is forgotten
    assert limit.wait("10.0.0.1") == 0.0
    assert limit.wait("10.0.0.2") == 10.0
    clock.now += 10
    assert limit.wait("10.0.0.2") == 0.0
    limit.failed("10.0.0.2")  # the window slides: the older failure has aged out
    assert limit.wait("10.0.0.2") == 0.0
