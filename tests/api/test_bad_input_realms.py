"""Bad input to realm creation and listing: refused with its code, and no realm made."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.support.api import Api, new_realm_id
from tests.support.refusals import (
    JSON,
    MALFORMED,
    assert_problem,
    assert_refused,
)

# --- realms ------------------------------------------------------------------------------------

BAD_REALM_BODIES = [
    pytest.param({"id": "Upper"}, id="upper-case"),
    pytest.param({"id": "a_b"}, id="underscore"),
    pytest.param({"id": "-ab"}, id="leading-dash"),
    pytest.param({"id": ""}, id="empty"),
    pytest.param({"id": "a" * 64}, id="64-chars"),
    pytest.param({"id": "réalm"}, id="non-ascii"),
    pytest.param({"id": "{fresh}\n"}, id="trailing-newline"),
    pytest.param({"id": "{fresh}\x00"}, id="nul"),
    pytest.param({"id": 5}, id="number"),
    pytest.param({"id": None}, id="null"),
    pytest.param({}, id="missing"),
    pytest.param({"id": "{fresh}", "revision": 5}, id="unknown-field"),
    pytest.param({"id": "{fresh}", "name": ""}, id="name-empty"),
    pytest.param({"id": "{fresh}", "name": "a\x00b"}, id="name-nul"),
    pytest.param({"id": "{fresh}", "name": "n" * 257}, id="name-257"),
    pytest.param({"id": "{fresh}", "name": 5}, id="name-number"),
    pytest.param([{"id": "{fresh}"}], id="array"),
    pytest.param("{fresh}", id="string"),
]


def _fill(body: Any, fresh: str) -> Any:
    if isinstance(body, str):
        return body.replace("{fresh}", fresh)
    if isinstance(body, list):
        return [_fill(item, fresh) for item in body]
    if isinstance(body, dict):
        return {key: _fill(value, fresh) for key, value in body.items()}
    return body


@pytest.mark.parametrize("body", BAD_REALM_BODIES)
async def test_realm_create_refuses_bad_input(client: AsyncTestClient[Litestar], body: Any) -> None:
    fresh = new_realm_id()
    response = await client.post("/v1/realms", json=_fill(body, fresh))
    assert_problem(response, 400, "invalid-request")
    assert_problem(await client.get(f"/v1/realms/{fresh}"), 404, "not-found")


@pytest.mark.parametrize("raw", MALFORMED)
async def test_realm_create_refuses_malformed_json(
    client: AsyncTestClient[Litestar], raw: bytes
) -> None:
    response = await client.post("/v1/realms", content=raw, headers=JSON)
    assert_problem(response, 400, "invalid-request")


async def test_a_realm_created_twice_is_409_and_unchanged(api: Api, root: dict[str, Any]) -> None:
    request = api.client.post("/v1/realms", json={"id": api.realm, "name": "Another name"})
    await assert_refused(api, request, 409, "already-exists")
    assert (await api.client.get(f"/v1/realms/{api.realm}")).json()["name"] == api.realm


@pytest.mark.parametrize("params", [{"limit": "0"}, {"cursor": "!!!"}, {"cursor": "AAAA"}])
async def test_realm_list_refuses_bad_parameters(
    client: AsyncTestClient[Litestar], params: dict[str, str]
) -> None:
    assert_problem(await client.get("/v1/realms", params=params), 400, "invalid-request")
