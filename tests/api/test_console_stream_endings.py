"""A console session's end ends what its cookie holds open: the prompt and event streams and
the long polls (prompt and claims), at once, each saying why (issue 16). Sign-out ends them
in this process (and, by the bus, in every other); an expiry is found by the per-process
re-check within a second. A signed-out cookie then opens nothing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import update

from charter.clock import utcnow
from charter.db.session import Database
from charter.db.tables import console_sessions
from tests.support.api import Api
from tests.support.console import Browser, browsing, sign_in
from tests.support.streams import HeldStream, held_stream, open_stream

ENDED_WITHIN_SECONDS = 1.0  # sign-out: at once; an expiry: the next 0.5 s re-check
SESSION_ENDED = b": session ended\r\n\r\n"


@pytest.fixture
def browser(client: AsyncTestClient[Litestar]) -> Iterator[Browser]:
    yield from browsing(client)


@pytest.fixture
def owner(backend: str, db: Database, request: pytest.FixtureRequest) -> Database:
    """The schema owner (the app role may not move a session's expiry)."""
    if backend == "postgres":
        admin: Database = request.getfixturevalue("pg_admin_db")
        return admin
    return db


def _held(client: AsyncTestClient[Litestar]) -> int:
    """How many streams and long polls this process holds."""
    return len(client.app.state.runtime.hub.holds)


async def _until_held(client: AsyncTestClient[Litestar], count: int) -> None:
    deadline = time.monotonic() + 10
    while (now := _held(client)) < count:
        assert time.monotonic() < deadline, f"{now} held, never {count}"
        await asyncio.sleep(0.01)


class Held:
    """A prompt stream, an event stream, a prompt long poll and a claims long poll, all
    opened with one browser's session cookie."""

    def __init__(self, api: Api, cookie: dict[str, str], etag: str) -> None:
        base = f"/v1/realms/{api.realm}"
        self.urls = {
            "prompt stream": f"{base}/agents/pilot/prompt/stream",
            "event stream": f"{base}/events/stream?after=0",
            "prompt poll": f"{base}/agents/pilot/prompt?wait=30",
            "claims poll": f"{base}/claims?agent_id=idle&wait=30",
        }
        self.headers = {
            "prompt stream": cookie,
            "event stream": cookie,
            "prompt poll": {**cookie, "If-None-Match": etag},
            "claims poll": cookie,
        }


def _assert_stream_ended(stream: HeldStream, since: float) -> None:
    assert stream.status == 200
    assert stream.ended_at is not None
    assert stream.ended_at - since < ENDED_WITHIN_SECONDS
    assert stream.body.endswith(SESSION_ENDED)


def _assert_poll_refused(poll: HeldStream, since: float) -> None:
    assert poll.ended_at is not None
    assert poll.ended_at - since < ENDED_WITHIN_SECONDS
    assert poll.status == 401
    problem = json.loads(poll.body)
    assert problem["code"] == "unauthenticated"
    assert "session ended" in problem["detail"]


async def _signed_in(api: Api, browser: Browser) -> tuple[Held, str]:
    """A node for pilot, and `browser` signed in: what its cookie can hold, and its CSRF
    token."""
    await api.create(title="Root", body="Body", owner_agent_id="pilot")
    token = await sign_in(browser, api, "operator")
    assert browser.cookie is not None
    cookie = {"Cookie": f"charter_session={browser.cookie}"}
    first = await open_stream(api.client, f"/v1/realms/{api.realm}/agents/pilot/prompt", cookie)
    assert first.status == 200
    etag = f'"{first.json()["composition_id"]}"'
    return Held(api, cookie, etag), token


async def test_sign_out_ends_the_sessions_streams_and_long_polls_at_once(
    api: Api, browser: Browser
) -> None:
    held, token = await _signed_in(api, browser)
    other = Browser(api.client)  # another session of the same realm keeps its stream
    await sign_in(other, api, "operator")
    other_cookie = {"Cookie": f"charter_session={other.cookie}"}
    before = _held(api.client)
    async with (
        held_stream(api.client, held.urls["prompt stream"], held.headers["prompt stream"]) as ps,
        held_stream(api.client, held.urls["event stream"], held.headers["event stream"]) as es,
        held_stream(
            api.client, held.urls["prompt poll"], held.headers["prompt poll"], started=False
        ) as pp,
        held_stream(
            api.client, held.urls["claims poll"], held.headers["claims poll"], started=False
        ) as cp,
        held_stream(api.client, held.urls["prompt stream"], other_cookie) as kept,
    ):
        await ps.until_sent(b"event: prompt")
        await es.until_sent(b"event: directive.created")
        await kept.until_sent(b"event: prompt")
        await _until_held(api.client, before + 5)
        assert (pp.status, pp.body, cp.status, cp.body) == (None, b"", None, b"")  # waiting
        signed_out = time.monotonic()
        answer = await browser.post("/console/sign-out", data={"csrf": token})
        assert answer.status_code == 303
        for stream in (ps, es):
            await stream.until_ended(ENDED_WITHIN_SECONDS + 1.0)
            _assert_stream_ended(stream, signed_out)
        for poll in (pp, cp):
            await poll.until_ended(ENDED_WITHIN_SECONDS + 1.0)
            _assert_poll_refused(poll, signed_out)
        assert kept.ended_at is None  # only the signed-out session's holds ended
    # The ended cookie opens nothing again.
    for name in ("prompt stream", "prompt poll"):
        again = await open_stream(api.client, held.urls[name], held.headers[name])
        assert again.status == 401, name
        assert again.json()["code"] == "unauthenticated"


async def test_an_expired_session_loses_its_stream_and_long_poll_within_a_second(
    api: Api, browser: Browser, owner: Database
) -> None:
    """No sign-out, no bus message: the session's 12 h run out (written straight into its
    row, as the schema owner), and the periodic re-check ends what it holds."""
    held, token = await _signed_in(api, browser)
    before = _held(api.client)
    async with (
        held_stream(api.client, held.urls["prompt stream"], held.headers["prompt stream"]) as ps,
        held_stream(
            api.client, held.urls["prompt poll"], held.headers["prompt poll"], started=False
        ) as pp,
    ):
        await ps.until_sent(b"event: prompt")
        await _until_held(api.client, before + 2)
        assert pp.status is None
        async with owner.transaction() as conn:
            query = (
                update(console_sessions)
                .where(console_sessions.c.csrf_token == token)
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
            assert (await conn.execute(query)).rowcount == 1
        expired = time.monotonic()
        await ps.until_ended(ENDED_WITHIN_SECONDS + 1.0)
        _assert_stream_ended(ps, expired)
        await pp.until_ended(ENDED_WITHIN_SECONDS + 1.0)
        _assert_poll_refused(pp, expired)
    assert (await browser.get("/console/realms")).status_code == 303  # to the sign-in form
