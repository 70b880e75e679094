"""The console's pages and forms in-process, on both backends: bad input is a 4xx page and
changes nothing, never a 500; the role and realm rules are the API's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.support.api import Api
from tests.support.console import Browser, browsing, sign_in


@pytest.fixture
def browser(client: AsyncTestClient[Litestar]) -> Iterator[Browser]:
    yield from browsing(client)


def _edit(token: str, node: dict[str, Any], **fields: str) -> dict[str, str]:
    return {
        "csrf": token,
        "expected_revision": str(node["revision"]),
        "base_version": str(node["active_version"]),
        "title": node["title"],
        "body": "changed",
        **fields,
    }


async def test_bad_edits_are_4xx_pages_and_change_nothing(browser: Browser, api: Api) -> None:
    node = await api.create(title="Root", body="Body")
    token = await sign_in(browser, api, "operator")
    url = f"/console/realms/{api.realm}/directives/{node['id']}/edit"
    bad: list[tuple[dict[str, str], int]] = [
        (_edit(token, node, expected_revision="1e3"), 400),
        (_edit(token, node, expected_revision=""), 400),
        (_edit(token, node, expected_revision="\u0661"), 400),
        (_edit(token, node, base_version="-1"), 400),
        (_edit(token, node, title=""), 400),
        (_edit(token, node, title="two\nlines"), 400),
        (_edit(token, node, title="x" * 300), 400),
        (_edit(token, node, body=""), 400),
        (_edit(token, node, body="x" * 40_000), 400),
        (_edit(token, node, body="nul\x00byte"), 400),
        (_edit(token, node, csrf=""), 403),
    ]
    for data, status in bad:
        answer = await browser.post(url, data=data)
        assert answer.status_code == status, (data, answer.text[:300])
        assert answer.headers["content-type"].startswith("text/html")
        assert "x" * 300 not in answer.text  # no echo of what was refused
    assert (await api.get(node["id"]))["revision"] == node["revision"]
    # Bodies other than a form or JSON are refused at the edge, as everywhere.
    multipart = await browser.post(url, files={"title": b"x"})
    assert multipart.status_code == 415
    ok = await browser.post(url, data=_edit(token, node, body="line one\r\nline two"))
    assert ok.status_code == 303
    assert (await api.get(node["id"]))["body"] == "line one\nline two"  # LF, as stored


async def test_unknown_and_foreign_things_are_404_pages(browser: Browser, api: Api) -> None:
    node = await api.create(title="Root", body="Body", owner_agent_id="pilot")
    await sign_in(browser, api, "reader")
    base = f"/console/realms/{api.realm}"
    for path, status in (
        (f"{base}/directives/dir_00000000000000000000000000", 404),
        (f"{base}/directives/not-an-id", 400),
        ("/console/realms/Not_A_Realm", 400),
        ("/console/realms/some-other-realm", 404),  # outside the key's realms
        (f"{base}/agents/nobody", 404),
        (f"{base}/agents/bad agent", 400),
        (f"{base}/directives/{node['id']}?from_version=1&to_version=9", 404),
        (f"{base}/directives/{node['id']}?from_version=x&to_version=1", 400),
        (f"{base}/compositions?composition_id=cmp_{'0' * 64}", 404),
        (f"{base}/compositions?composition_id=nope", 400),
    ):
        answer = await browser.get(path)
        assert answer.status_code == status, (path, answer.text[:300])
        assert answer.headers["content-type"].startswith("text/html")


async def test_a_reader_may_not_write_even_with_its_token(browser: Browser, api: Api) -> None:
    node = await api.create(title="Root", body="Body")
    await api.patch(node, body="Two")
    node = await api.get(node["id"])
    token = await sign_in(browser, api, "reader")
    page = await browser.get(f"/console/realms/{api.realm}/directives/{node['id']}")
    assert page.status_code == 200
    assert ">Edit<" not in page.text
    assert ">Roll back<" not in page.text
    base = f"/console/realms/{api.realm}/directives/{node['id']}"
    edit = await browser.post(f"{base}/edit", data=_edit(token, node))
    rollback = await browser.post(
        f"{base}/rollback",
        data={"csrf": token, "expected_revision": str(node["revision"]), "version": "1"},
    )
    assert (edit.status_code, rollback.status_code) == (403, 403)
    assert (await api.get(node["id"]))["revision"] == node["revision"]


async def test_signing_in_refuses_what_is_not_a_usable_key(browser: Browser, api: Api) -> None:
    agent = await api.client.post(
        "/v1/keys", json={"role": "agent", "realms": [api.realm], "agent_id": "pilot"}
    )
    for key, status in (("", 400), ("chk_nope", 401), (agent.json()["key"], 401)):
        answer = await browser.post("/console/sign-in", data={"key": key})
        assert answer.status_code == status
        assert "charter_session" not in answer.headers.get("set-cookie", "")
        if key:
            assert key not in answer.text
    assert (await browser.get("/console/realms")).status_code == 303


async def test_the_cookie_is_secure_behind_tls(browser: Browser, api: Api) -> None:
    made = await api.client.post("/v1/keys", json={"role": "reader", "realms": [api.realm]})
    secret = made.json()["key"]
    cookies = []
    for forwarded in ({}, {"X-Forwarded-Proto": "https"}):
        answer = await browser.client.post(
            "/console/sign-in", data={"key": secret}, headers=forwarded, follow_redirects=False
        )
        browser.client.cookies.clear()
        assert answer.status_code == 303
        cookies.append(answer.headers["set-cookie"].lower())
    plain, behind_tls = cookies
    for cookie in cookies:
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        assert "max-age=43200" in cookie
        assert secret.lower() not in cookie
    assert "secure" not in plain
    assert "secure" in behind_tls
