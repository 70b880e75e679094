"""Compare-and-swap on PATCH, DELETE and rollback: If-Match or expected_revision, never neither."""

from __future__ import annotations

import json
from typing import Any

import pytest
from httpx import Response

from tests.support.api import Api
from tests.support.checks import assert_problem, assert_unchanged, if_match, snapshot

WRITES = ["patch", "delete", "rollback"]


async def _write(
    api: Api,
    kind: str,
    node: dict[str, Any],
    *,
    headers: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
) -> Response:
    """One CAS write of the given kind; the body carries only what the caller adds."""
    url = f"{api.base}/{node['id']}"
    payload = dict(body or {})
    if kind == "patch":
        payload.setdefault("title", "Changed title")
        return await api.client.patch(url, json=payload, headers=headers)
    if kind == "rollback":
        payload.setdefault("version", 1)
        return await api.client.post(f"{url}/rollback", json=payload, headers=headers)
    content = json.dumps(payload).encode() if payload else None
    return await api.client.request(
        "DELETE",
        url,
        content=content,
        headers={**(headers or {}), "Content-Type": "application/json"},
    )


async def _node_for(api: Api, kind: str) -> dict[str, Any]:
    """A node at revision 2 with two versions, so every kind of write has something to do."""
    node = await api.create(title="First", body="One")
    return await api.patch(node, title="Second", body="Two")


def _expect_success(response: Response, kind: str) -> None:
    assert response.status_code == (204 if kind == "delete" else 200), response.text


@pytest.mark.parametrize("kind", WRITES)
async def test_write_with_if_match_header_succeeds(api: Api, kind: str) -> None:
    node = await _node_for(api, kind)
    response = await _write(api, kind, node, headers=if_match(node["revision"]))
    _expect_success(response, kind)
    assert response.headers["ETag"] == f'"{node["revision"] + 1}"'
    assert (await api.get(node["id"]))["revision"] == node["revision"] + 1


@pytest.mark.parametrize("kind", WRITES)
async def test_write_with_expected_revision_in_body_succeeds(api: Api, kind: str) -> None:
    node = await _node_for(api, kind)
    response = await _write(api, kind, node, body={"expected_revision": node["revision"]})
    _expect_success(response, kind)
    assert (await api.get(node["id"]))["revision"] == node["revision"] + 1


@pytest.mark.parametrize("kind", WRITES)
async def test_header_and_body_agreeing_is_accepted(api: Api, kind: str) -> None:
    node = await _node_for(api, kind)
    response = await _write(
        api,
        kind,
        node,
        headers=if_match(node["revision"]),
        body={"expected_revision": node["revision"]},
    )
    _expect_success(response, kind)


@pytest.mark.parametrize("kind", WRITES)
async def test_write_without_expected_revision_is_428_and_writes_nothing(
    api: Api, kind: str
) -> None:
    node = await _node_for(api, kind)
    before = await snapshot(api, node["id"])
    response = await _write(api, kind, node)
    assert_problem(response, 428, "precondition-required")
    await assert_unchanged(api, before)


@pytest.mark.parametrize("kind", WRITES)
async def test_stale_if_match_is_412_with_current_revision(api: Api, kind: str) -> None:
    node = await _node_for(api, kind)
    before = await snapshot(api, node["id"])
    response = await _write(api, kind, node, headers=if_match(node["revision"] - 1))
    problem = assert_problem(response, 412, "stale-revision")
    assert problem["current_revision"] == node["revision"]
    assert problem["etag"] == f'"{node["revision"]}"'
    assert response.headers["ETag"] == f'"{node["revision"]}"'
    await assert_unchanged(api, before)


@pytest.mark.parametrize("kind", WRITES)
async def test_stale_body_revision_is_409_with_current_revision(api: Api, kind: str) -> None:
    node = await _node_for(api, kind)
    before = await snapshot(api, node["id"])
    response = await _write(api, kind, node, body={"expected_revision": node["revision"] + 5})
    problem = assert_problem(response, 409, "stale-revision")
    assert problem["current_revision"] == node["revision"]
    assert problem["etag"] == f'"{node["revision"]}"'
    await assert_unchanged(api, before)


@pytest.mark.parametrize("kind", WRITES)
async def test_if_match_and_body_disagreeing_is_400(api: Api, kind: str) -> None:
    node = await _node_for(api, kind)
    before = await snapshot(api, node["id"])
    response = await _write(
        api,
        kind,
        node,
        headers=if_match(node["revision"]),
        body={"expected_revision": node["revision"] - 1},
    )
    assert_problem(response, 400, "invalid-request")
    await assert_unchanged(api, before)


@pytest.mark.parametrize("header", ["*", '"abc"', "W/", '"1", "2"', '"-1"'])
async def test_malformed_if_match_is_400(api: Api, header: str) -> None:
    node = await api.create()
    before = await snapshot(api, node["id"])
    response = await api.client.patch(
        f"{api.base}/{node['id']}", json={"title": "New"}, headers={"If-Match": header}
    )
    assert_problem(response, 400, "invalid-request")
    await assert_unchanged(api, before)


@pytest.mark.parametrize("value", [0, -1, 1.5, "1", True, None, [1]])
async def test_bad_expected_revision_in_body_is_400(api: Api, value: object) -> None:
    node = await api.create()
    before = await snapshot(api, node["id"])
    response = await api.client.patch(
        f"{api.base}/{node['id']}", json={"title": "New", "expected_revision": value}
    )
    assert_problem(response, 400, "invalid-request")
    await assert_unchanged(api, before)


@pytest.mark.parametrize("tag", ['W/"1"', 'W/"2"', ' W/"1" '])
async def test_a_weak_etag_never_matches(api: Api, tag: str) -> None:
    """If-Match compares strongly (RFC 9110 §13.1.1): W/"1" is not "1", even at revision 1."""
    node = await api.create()
    before = await snapshot(api, node["id"])
    response = await api.client.patch(
        f"{api.base}/{node['id']}", json={"title": "New"}, headers={"If-Match": tag}
    )
    assert_problem(response, 412, "stale-revision")
    assert response.headers["etag"] == '"1"'
    await assert_unchanged(api, before)


async def test_get_etag_is_the_revision_and_feeds_the_next_write(api: Api) -> None:
    node = await api.create()
    response = await api.client.get(f"{api.base}/{node['id']}")
    assert response.headers["ETag"] == '"1"'
    patched = await api.client.patch(
        f"{api.base}/{node['id']}",
        json={"priority": "high"},
        headers={"If-Match": response.headers["ETag"]},
    )
    assert patched.status_code == 200, patched.text
    assert patched.headers["ETag"] == '"2"'
    again = await api.client.get(f"{api.base}/{node['id']}")
    assert again.headers["ETag"] == '"2"'


async def test_second_writer_with_the_same_revision_loses(api: Api) -> None:
    node = await api.create(title="Base", body="Base")
    first = await api.client.patch(
        f"{api.base}/{node['id']}", json={"body": "Writer A"}, headers=if_match(1)
    )
    assert first.status_code == 200, first.text
    second = await api.client.patch(
        f"{api.base}/{node['id']}", json={"body": "Writer B"}, headers=if_match(1)
    )
    problem = assert_problem(second, 412, "stale-revision")
    assert problem["current_revision"] == 2
    found = await api.get(node["id"])
    assert found["body"] == "Writer A"
    assert found["latest_version"] == 2


async def test_write_to_a_missing_directive_is_404(api: Api) -> None:
    missing = {"id": "dir_" + "0" * 26, "revision": 1}
    for kind in WRITES:
        response = await _write(api, kind, missing, headers=if_match(1))
        assert_problem(response, 404, "not-found")


async def test_no_op_with_a_stale_revision_is_still_refused(api: Api) -> None:
    node = await api.create(title="Same", body="Same")
    node = await api.patch(node, priority="high")
    response = await api.client.patch(
        f"{api.base}/{node['id']}", json={"title": "Same", "body": "Same"}, headers=if_match(1)
    )
    problem = assert_problem(response, 412, "stale-revision")
    assert problem["current_revision"] == 2


@pytest.mark.parametrize(
    "content", [b"{not json", b'{"expected_revision": 1, "force": true}', b"[]"]
)
async def test_delete_with_a_bad_body_is_400_and_writes_nothing(api: Api, content: bytes) -> None:
    node = await api.create()
    before = await snapshot(api, node["id"])
    response = await api.client.request(
        "DELETE",
        f"{api.base}/{node['id']}",
        content=content,
        headers={"Content-Type": "application/json"},
    )
    assert_problem(response, 400, "invalid-request")
    await assert_unchanged(api, before)
