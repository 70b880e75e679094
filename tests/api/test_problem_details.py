"""Errors are problem documents, never 5xx for bad input: properties over arbitrary requests."""

from __future__ import annotations

import json
from typing import Any

from httpx import Response
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.api import Api
from tests.support.refusals import (
    JSON,
    KNOWN_CODES,
    MARKER,
    assert_problem,
)

PROPERTY = settings(
    max_examples=120,
    deadline=None,
    # One realm serves every example: refused ones must leave it as it was, which is the point.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
# Values the fields expect, or nearly: so that examples get past decoding and reach the rules.
PLAUSIBLE: st.SearchStrategy[Any] = st.sampled_from(
    [
        "realm", "team", "agent", "org", "active", "paused", "completed", "cancelled", "critical",
        "high", "normal", "low", "system_first", "user_prepend", "", " ", "\x00", "line\nbreak",
        "dir_" + "0" * 26, "lead", "Lead Agent", "root", "Root", f"{MARKER} text", "x" * 300,
        0, 1, -1, 2**31, 2**63, 1.0, True, None, {}, [], {"charter.x": 1}, {"k": "v\x00"},
    ]
)  # fmt: skip
FIELD_VALUES = PLAUSIBLE | JSON_VALUES

CREATE_FIELDS = [
    "level", "title", "body", "parent_id", "key", "status", "priority", "owner_agent_id",
    "injection_mode", "metadata", "message",
]  # fmt: skip
PATCH_FIELDS = [
    "title", "body", "message", "status", "priority", "owner_agent_id", "parent_id",
    "injection_mode", "metadata", "key", "reopen", "cascade", "expected_revision",
]  # fmt: skip


def _bodies(fields: list[str], base: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Anything JSON; objects with the endpoint's fields holding odd values; the valid base
    with a few fields replaced; and bytes that may not be JSON at all."""
    keyed = st.dictionaries(st.sampled_from(fields) | TEXT, FIELD_VALUES, max_size=6)
    return st.one_of(
        JSON_VALUES,
        keyed,
        keyed.map(lambda extra: {**base, **extra}),
        st.binary(max_size=64),
    )


def _encode(body: Any) -> bytes:
    if isinstance(body, bytes):
        return body
    return json.dumps(body, ensure_ascii=False).encode()


def assert_client_error(response: Response) -> dict[str, Any]:
    """A 4xx problem document with one of the stable codes."""
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["status"] == response.status_code
    assert problem["code"] in KNOWN_CODES
    return problem


async def _revisions(api: Api, directive_id: str | None = None) -> tuple[int, int | None]:
    realm = (await api.client.get(f"/v1/realms/{api.realm}")).json()["revision"]
    node = (await api.get(directive_id))["revision"] if directive_id else None
    return realm, node


@PROPERTY
@given(body=_bodies(CREATE_FIELDS, {"level": "realm", "title": "T", "body": "B"}))
async def test_no_body_posted_to_create_answers_5xx(api: Api, body: Any) -> None:
    before = await _revisions(api)
    response = await api.client.post(api.base, content=_encode(body), headers=JSON)
    if response.status_code == 201:
        return
    assert_client_error(response)
    assert await _revisions(api) == before


@PROPERTY
@given(body=_bodies(PATCH_FIELDS, {"title": "New title"}))
async def test_no_body_patched_answers_5xx_and_a_refusal_writes_nothing(
    api: Api, root: dict[str, Any], body: Any
) -> None:
    before = await _revisions(api, root["id"])
    response = await api.client.patch(
        f"{api.base}/{root['id']}",
        content=_encode(body),
        headers={**JSON, "If-Match": f'"{before[1]}"'},
    )
    if response.status_code == 200:
        return
    assert_client_error(response)
    assert await _revisions(api, root["id"]) == before


@PROPERTY
@given(body=_bodies(["version", "expected_revision", "message"], {"version": 1}))
async def test_no_body_posted_to_rollback_answers_5xx(
    api: Api, root: dict[str, Any], body: Any
) -> None:
    before = await _revisions(api, root["id"])
    response = await api.client.post(
        f"{api.base}/{root['id']}/rollback",
        content=_encode(body),
        headers={**JSON, "If-Match": f'"{before[1]}"'},
    )
    if response.status_code == 200:
        return
    assert_client_error(response)
    assert await _revisions(api, root["id"]) == before


QUERY_NAMES = st.sampled_from(
    ["limit", "cursor", "level", "status", "priority", "parent_id", "owner_agent_id", "key",
     "roots", "after", "type", "directive_id", "from", "to", "wait"]
) | TEXT  # fmt: skip
QUERY_VALUES = TEXT | st.integers().map(str) | st.sampled_from(["", "0", "500", "true", "\x00"])


READ_PATHS = [
    "", "/tree", "/directives", "/events", "/agents", "/agents/lead/prompt",
    "/directives/{id}/versions", "/directives/{id}/history", "/directives/{id}/diff",
]  # fmt: skip


@PROPERTY
@given(
    query=st.dictionaries(QUERY_NAMES, QUERY_VALUES, max_size=4), path=st.sampled_from(READ_PATHS)
)
async def test_no_query_string_on_a_read_answers_5xx(
    api: Api, root: dict[str, Any], query: dict[str, str], path: str
) -> None:
    url = f"/v1/realms/{api.realm}" + path.format(id=root["id"])
    response = await api.client.get(url, params=query)
    if response.status_code != 200:
        assert_client_error(response)


async def test_an_unknown_route_is_a_404_problem(api: Api) -> None:
    assert_problem(await api.client.get(f"/v1/realms/{api.realm}/nothing-here"), 404, "not-found")


async def test_a_method_a_route_lacks_is_a_405_problem(api: Api, root: dict[str, Any]) -> None:
    response = await api.client.put(f"{api.base}/{root['id']}", json={"title": MARKER})
    assert response.status_code == 405, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert MARKER not in response.text


async def test_validation_problems_name_the_field_but_not_its_value(
    api: Api, root: dict[str, Any]
) -> None:
    body = {"level": "realm", "title": MARKER * 20, "body": f"{MARKER} body"}
    problem = assert_problem(await api.client.post(api.base, json=body), 400, "invalid-request")
    assert problem["errors"][0]["key"] == "title"
