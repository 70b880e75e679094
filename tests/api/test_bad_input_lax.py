"""Bodies are read strictly on every route: a string where a number or a boolean belongs, or
a number where a time belongs, is 400 and writes nothing (Litestar's own conversion is lax:
"60" would pass for 60, "true" for true, 5 for 1970-01-01T00:00:05Z). A missing body says so."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.api import Api
from tests.support.refusals import assert_problem, assert_refused, send

SOON = "2999-01-01T00:00:00Z"

CLAIMS = [
    {"agent_id": "a1", "lease_seconds": "60"},
    {"agent_id": "a1", "lease_seconds": 60.0},
    {"agent_id": "a1", "lease_seconds": 60, "rerun": "true"},
    {"agent_id": "a1", "lease_seconds": 60, "rerun": 1},
    {"agent_id": 7, "lease_seconds": 60},
]


@pytest.mark.parametrize("body", CLAIMS, ids=lambda b: ",".join(f"{k}={v!r}" for k, v in b.items()))
async def test_a_claim_is_not_coerced(api: Api, root: dict[str, Any], body: dict[str, Any]) -> None:
    await assert_refused(
        api, send(api, "POST", f"/{root['id']}/claims", body), 400, "invalid-request"
    )
    claims = await api.client.get(f"/v1/realms/{api.realm}/claims")
    assert claims.json()["items"] == []


async def test_a_rerun_given_as_a_string_reopens_nothing(api: Api, root: dict[str, Any]) -> None:
    closed = await api.patch(root, status="completed")
    body = {"agent_id": "a1", "lease_seconds": 60, "rerun": "true"}
    await assert_refused(
        api, send(api, "POST", f"/{root['id']}/claims", body), 400, "invalid-request"
    )
    assert (await api.get(root["id"]))["status"] == closed["status"] == "completed"


SCHEDULES = [
    {"at": 5, "action": {"status": "paused"}},
    {"at": 2e9, "action": {"status": "paused"}},
    {"at": True, "action": {"status": "paused"}},
    {"at": SOON, "action": {"status": "paused"}, "expected_revision": "1"},
    {"at": SOON, "action": {"activate": "1"}},
    {"at": SOON, "action": {"rollout": {"percent": "50"}}},
]


@pytest.mark.parametrize("body", SCHEDULES, ids=lambda b: repr(b)[:60])
async def test_a_schedule_is_not_coerced(
    api: Api, root: dict[str, Any], body: dict[str, Any]
) -> None:
    path = f"/{root['id']}/schedules"
    await assert_refused(api, send(api, "POST", path, body), 400, "invalid-request")
    assert (await api.client.get(f"{api.base}{path}")).json()["items"] == []
    assert (await api.get(root["id"]))["status"] == root["status"]


async def test_a_finish_is_not_coerced(api: Api, root: dict[str, Any]) -> None:
    made = await api.client.post(
        f"{api.base}/{root['id']}/claims", json={"agent_id": "a1", "lease_seconds": 60}
    )
    assert made.status_code == 201, made.text
    path = f"/{root['id']}/claims/{made.json()['id']}/finish"
    for body in ({"outcome": "succeeded", "cascade": "true"}, {"outcome": 1}):
        await assert_refused(api, send(api, "POST", path, body), 400, "invalid-request")
    listed = await api.client.get(f"/v1/realms/{api.realm}/claims")
    assert [c["state"] for c in listed.json()["items"]] == ["live"]


@pytest.mark.parametrize("path", ["/{id}/claims", "/{id}/claims/clm_x/finish"])
async def test_a_missing_body_is_named_as_such(api: Api, root: dict[str, Any], path: str) -> None:
    answer = await api.client.post(f"{api.base}{path.format(id=root['id'])}")
    problem = assert_problem(answer, 400, "invalid-request")
    assert problem["detail"] == "the request needs a JSON body"


async def test_inject_without_a_body_is_named_as_such(api: Api) -> None:
    answer = await api.client.post(f"/v1/realms/{api.realm}/agents/a1/inject")
    problem = assert_problem(answer, 400, "invalid-request")
    assert problem["detail"] == "the request needs a JSON body"


async def test_a_pattern_is_named_without_its_regex_machinery(
    api: Api, root: dict[str, Any]
) -> None:
    answer = await api.client.post("/v1/realms", json={"id": "Bad Realm!"})
    problem = assert_problem(answer, 400, "invalid-request")
    assert problem["detail"].startswith("Expected `str` matching [a-z0-9][a-z0-9-]{0,62}")
    body = {"agent_id": "a1", "lease_seconds": 60}
    made = await api.client.post(f"{api.base}/{root['id']}/claims", json=body)
    finish = {"outcome": "failed", "error_code": "bad\x00code"}
    path = f"{api.base}/{root['id']}/claims/{made.json()['id']}/finish"
    problem = assert_problem(await api.client.post(path, json=finish), 400, "invalid-request")
    assert "regex" not in problem["detail"]
