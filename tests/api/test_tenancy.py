"""The realm is the tenant boundary: nothing is seen or changed across it; unknown realms 404."""

from __future__ import annotations

import pytest

from tests.support.api import Api
from tests.support.checks import assert_problem, assert_unchanged, if_match, other_realm, snapshot

READ_SUFFIXES = [
    "",
    "/versions",
    "/versions/1",
    "/diff?from=1&to=1",
    "/history",
    "/ancestry",
    "/tree",
]


@pytest.mark.parametrize("suffix", READ_SUFFIXES)
async def test_reading_a_directive_under_another_realm_is_404(api: Api, suffix: str) -> None:
    node = await api.create()
    elsewhere = await other_realm(api)
    await elsewhere.create()  # the other realm is not empty, just without this node
    response = await api.client.get(f"{elsewhere.base}/{node['id']}{suffix}")
    assert_problem(response, 404, "not-found")
    own = await api.client.get(f"{api.base}/{node['id']}{suffix}")
    assert own.status_code == 200, own.text


async def test_writing_a_directive_under_another_realm_is_404_and_writes_nothing(
    api: Api,
) -> None:
    node = await api.create()
    elsewhere = await other_realm(api)
    before = await snapshot(api, node["id"])
    url = f"{elsewhere.base}/{node['id']}"
    responses = [
        await api.client.patch(url, json={"title": "Hijacked"}, headers=if_match(1)),
        await api.client.delete(url, headers=if_match(1)),
        await api.client.post(f"{url}/rollback", json={"version": 1}, headers=if_match(1)),
    ]
    for response in responses:
        assert_problem(response, 404, "not-found")
    await assert_unchanged(api, before)
    assert await elsewhere.events() == []


async def test_lists_feeds_and_trees_hold_only_their_realm(api: Api) -> None:
    mine = await api.create(title="Mine", owner_agent_id="shared-agent", key="same-key")
    elsewhere = await other_realm(api)
    theirs = await elsewhere.create(title="Theirs", owner_agent_id="shared-agent", key="same-key")
    assert [i["id"] for i in (await api.client.get(api.base)).json()["items"]] == [mine["id"]]
    assert [i["id"] for i in (await api.client.get(elsewhere.base)).json()["items"]] == [
        theirs["id"]
    ]
    assert {e["directive_id"] for e in await api.events()} == {mine["id"]}
    assert {e["directive_id"] for e in await elsewhere.events()} == {theirs["id"]}
    forest = (await api.client.get(f"/v1/realms/{api.realm}/tree")).json()
    assert [root["id"] for root in forest["roots"]] == [mine["id"]]


async def test_each_realm_counts_its_own_revision(api: Api) -> None:
    elsewhere = await other_realm(api)
    await api.create()
    await api.create()
    await elsewhere.create()
    mine = (await api.client.get(f"/v1/realms/{api.realm}")).json()
    theirs = (await api.client.get(f"/v1/realms/{elsewhere.realm}")).json()
    assert (mine["revision"], theirs["revision"]) == (2, 1)


UNKNOWN = "/v1/realms/no-such-realm-0"
UNKNOWN_READS = [
    UNKNOWN,
    f"{UNKNOWN}/directives",
    f"{UNKNOWN}/directives/dir_{'0' * 26}",
    f"{UNKNOWN}/events",
    f"{UNKNOWN}/tree",
]


@pytest.mark.parametrize("path", UNKNOWN_READS)
async def test_unknown_realm_is_404(api: Api, path: str) -> None:
    assert_problem(await api.client.get(path), 404, "not-found")


async def test_create_in_an_unknown_realm_is_404(api: Api) -> None:
    response = await api.client.post(
        f"{UNKNOWN}/directives", json={"level": "realm", "title": "T", "body": "B"}
    )
    assert_problem(response, 404, "not-found")


@pytest.mark.parametrize("realm_id", ["Upper", "-lead", "has_underscore", "a" * 64])
async def test_malformed_realm_id_in_a_path_is_400(api: Api, realm_id: str) -> None:
    assert_problem(
        await api.client.get(f"/v1/realms/{realm_id}/directives"), 400, "invalid-request"
    )


async def test_realm_create_list_and_show(api: Api) -> None:
    elsewhere = await other_realm(api)
    shown = (await api.client.get(f"/v1/realms/{elsewhere.realm}")).json()
    assert shown["id"] == elsewhere.realm
    assert shown["name"] == elsewhere.realm
    assert shown["revision"] == 0
    listed: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 500}
        if cursor is not None:
            params["cursor"] = cursor
        page = (await api.client.get("/v1/realms", params=params)).json()
        listed += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert {api.realm, elsewhere.realm} <= set(listed)
    assert listed == sorted(listed)


async def test_duplicate_realm_is_409(api: Api) -> None:
    response = await api.client.post("/v1/realms", json={"id": api.realm, "name": "Again"})
    assert_problem(response, 409, "already-exists")
    assert (await api.client.get(f"/v1/realms/{api.realm}")).json()["name"] == api.realm


@pytest.mark.parametrize("body", [{"id": "Bad Id"}, {"id": ""}, {}, {"id": "ok-id", "extra": 1}])
async def test_bad_realm_create_is_400(api: Api, body: dict[str, object]) -> None:
    assert_problem(await api.client.post("/v1/realms", json=body), 400, "invalid-request")
