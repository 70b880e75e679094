"""Guesses sent all at once to a real server are counted before any is checked: of 40 wrong
keys from one address at the same moment, at most the limit (5) are checked and answered 401;
the rest are refused with 429 (docs/console.md, "Sign-in limit")."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest

from tests.support.servers import StartServer

pytestmark = pytest.mark.timeout(60)
LIMIT = 5
GUESSES = 40


async def test_guesses_sent_at_once_are_checked_at_most_the_limit(
    start_server: StartServer,
) -> None:
    server = await start_server()
    limits = httpx.Limits(max_connections=GUESSES)
    async with httpx.AsyncClient(base_url=server.url, timeout=20.0, limits=limits) as http:
        answers = await asyncio.gather(
            *(http.post("/console/sign-in", data={"key": f"chk_wrong_{n}"}) for n in range(GUESSES))
        )
    statuses = Counter(answer.status_code for answer in answers)
    assert set(statuses) <= {401, 429}, statuses
    assert 1 <= statuses[401] <= LIMIT, statuses
    assert statuses[429] == GUESSES - statuses[401]
    assert all("Retry-After" in a.headers for a in answers if a.status_code == 429)
