"""The console in in-process tests: a browser's session cookie sent by hand, and signing in."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.support.api import Api


class Browser:
    """One browser's session cookie, sent by hand through the session's test client (whose
    own jar is emptied after every answer, so no other test ever sends it). Console pages
    read no Authorization header: the client's admin key changes nothing here."""

    def __init__(self, client: AsyncTestClient[Litestar]) -> None:
        self.client = client
        self.cookie: str | None = None

    def _headers(self) -> dict[str, str]:
        return {"Cookie": f"charter_session={self.cookie}"} if self.cookie else {}

    def _keep(self, answer: httpx.Response) -> httpx.Response:
        given = answer.cookies.get("charter_session")
        if given is not None:
            self.cookie = given
        self.client.cookies.clear()
        return answer

    async def get(self, url: str) -> httpx.Response:
        answer = await self.client.get(url, headers=self._headers(), follow_redirects=False)
        return self._keep(answer)

    async def post(
        self, url: str, data: dict[str, str] | None = None, files: dict[str, bytes] | None = None
    ) -> httpx.Response:
        answer = await self.client.post(
            url, data=data, files=files, headers=self._headers(), follow_redirects=False
        )
        return self._keep(answer)


def browsing(client: AsyncTestClient[Litestar]) -> Iterator[Browser]:
    """A test file's `browser` fixture: `yield from browsing(client)`."""
    yield Browser(client)
    client.cookies.clear()


async def sign_in(browser: Browser, api: Api, role: str) -> str:
    """Sign in with a new key of `role` in the realm; the session's CSRF token."""
    made = await api.client.post("/v1/keys", json={"role": role, "realms": [api.realm]})
    assert made.status_code == 201, made.text
    answer = await browser.post("/console/sign-in", data={"key": made.json()["key"]})
    assert answer.status_code == 303, answer.text
    page = await browser.get("/console/realms")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    return token.group(1)
