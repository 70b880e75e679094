"""Directive keys: optional, unique in the realm, changeable by PATCH."""

from __future__ import annotations

import pytest

from tests.support.api import Api
from tests.support.checks import (
    assert_problem,
    assert_unchanged,
    if_match,
    realm_revision,
    snapshot,
)


async def test_duplicate_key_on_create_is_409_and_writes_nothing(api: Api) -> None:
    first = await api.create(key="team/alpha")
    revision = await realm_revision(api)
    response = await api.client.post(
        api.base, json={"level": "realm", "title": "T", "body": "B", "key": "team/alpha"}
    )
    assert_problem(response, 409, "already-exists")
    assert await realm_revision(api) == revision
    items = (await api.client.get(api.base)).json()["items"]
    assert [i["id"] for i in items] == [first["id"]]


async def test_duplicate_key_on_patch_is_409_and_writes_nothing(api: Api) -> None:
    await api.create(key="taken")
    node = await api.create(key="mine")
    before = await snapshot(api, node["id"])
    response = await api.client.patch(
        f"{api.base}/{node['id']}", json={"key": "taken", "title": "New"}, headers=if_match(1)
    )
    assert_problem(response, 409, "already-exists")
    await assert_unchanged(api, before)


async def test_a_released_key_can_be_reused(api: Api) -> None:
    node = await api.create(key="handle")
    await api.patch(node, key="other-handle")
    reused = await api.create(key="handle")
    assert reused["key"] == "handle"


async def test_many_nodes_may_have_no_key(api: Api) -> None:
    a = await api.create()
    b = await api.create()
    assert a["key"] is None
    assert b["key"] is None


@pytest.mark.parametrize("key", ["Upper", "-lead", "has space", "x" * 129, ""])
async def test_malformed_key_is_400(api: Api, key: str) -> None:
    response = await api.client.post(
        api.base, json={"level": "realm", "title": "T", "body": "B", "key": key}
    )
    assert_problem(response, 400, "invalid-request")
    assert await realm_revision(api) == 0
