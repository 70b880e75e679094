"""Strict edges (DESIGN §12, issue 11): media types, If-Match, plain digits, encoded slashes.

Each of these was accepted before: text/plain, form, multipart, XML and untyped bodies;
`W/"n"` as If-Match; `versions/%201`, `versions/%D9%A1` (an Arabic-Indic one), `versions/+1`,
`versions/01`, `after=1e3` and `limit=1e1`. The raw-socket edges (body timeout, 413 and the
logs) are in tests/live/test_edges.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from httpx import Response
from litestar import Litestar

from charter.api.edges import media_type_accepted
from charter.settings import Settings
from tests.support.api import Api
from tests.support.checks import assert_problem, assert_unchanged, snapshot

CREATE = b'{"level": "realm", "title": "T", "body": "B"}'
ROUTED = {"via": "router"}  # a query parameter the fast path does not read: always routed


async def _count(api: Api) -> int:
    response = await api.client.get(api.base)
    assert response.status_code == 200, response.text
    return len(response.json()["items"])


async def _post(api: Api, content_type: str | None, body: bytes = CREATE) -> Response:
    headers = {} if content_type is None else {"Content-Type": content_type}
    return await api.client.post(api.base, content=body, headers=headers)


# --- media types -----------------------------------------------------------------------------

REFUSED_TYPES = [
    pytest.param(None, id="none"),
    pytest.param("text/plain", id="text"),
    pytest.param("application/x-www-form-urlencoded", id="form"),
    pytest.param("multipart/form-data; boundary=x", id="multipart"),
    pytest.param("application/xml", id="xml"),
    pytest.param("text/json", id="text-json"),
    pytest.param("application/merge-patch+json", id="structured-suffix"),
    pytest.param("application/problem+json", id="problem-json"),
    pytest.param("application/json; charset=latin-1", id="other-charset"),
    pytest.param("application/json; profile=x", id="other-parameter"),
    pytest.param("application/jsonx", id="prefix"),
    pytest.param("", id="empty"),
]


@pytest.mark.parametrize("content_type", REFUSED_TYPES)
async def test_a_body_that_is_not_application_json_is_415(
    api: Api, content_type: str | None
) -> None:
    before = await _count(api)
    response = await _post(api, content_type)
    problem = assert_problem(response, 415, "unsupported-media-type")
    assert "application/json" in problem["detail"]
    assert await _count(api) == before


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON;Charset=UTF-8",
     'application/json; charset="utf-8"'],
)  # fmt: skip
async def test_application_json_with_or_without_utf8_charset_is_accepted(
    api: Api, content_type: str
) -> None:
    response = await _post(api, content_type)
    assert response.status_code == 201, response.text


async def test_two_content_types_are_415(api: Api) -> None:
    headers = [("Content-Type", "application/json"), ("Content-Type", "text/plain")]
    response = await api.client.post(api.base, content=CREATE, headers=headers)
    assert_problem(response, 415, "unsupported-media-type")


async def test_every_write_route_refuses_a_form_body(api: Api) -> None:
    node = await api.create(owner_agent_id="pilot")
    url = f"{api.base}/{node['id']}"
    form = {"Content-Type": "application/x-www-form-urlencoded", "If-Match": '"1"'}
    for method, path in [
        ("POST", "/v1/realms"),
        ("POST", "/v1/keys"),
        ("POST", api.base),
        ("PATCH", url),
        ("DELETE", url),
        ("POST", f"{url}/rollback"),
        ("POST", f"/v1/realms/{api.realm}/agents/pilot/inject"),
    ]:
        response = await api.client.request(method, path, content=b"a=1", headers=form)
        assert_problem(response, 415, "unsupported-media-type")
    assert (await api.get(node["id"]))["revision"] == 1


async def test_bodyless_requests_need_no_content_type(api: Api) -> None:
    node = await api.create(owner_agent_id="pilot")
    assert (await api.client.get(f"{api.base}/{node['id']}")).status_code == 200
    prompt = await api.client.get(f"/v1/realms/{api.realm}/agents/pilot/prompt")
    assert prompt.status_code == 200
    # An explicitly empty body is no body either.
    empty = {"Content-Length": "0", "Content-Type": "text/plain"}
    response = await api.client.get(f"{api.base}/{node['id']}", headers=empty)
    assert response.status_code == 200, response.text
    response = await api.client.delete(f"{api.base}/{node['id']}", headers={"If-Match": '"1"'})
    assert response.status_code == 204, response.text
    key = await api.client.post("/v1/keys", json={"role": "reader", "realms": [api.realm]})
    assert (await api.client.delete(f"/v1/keys/{key.json()['id']}")).status_code == 204


async def test_a_post_without_a_body_is_not_a_415(api: Api) -> None:
    response = await api.client.post(api.base)
    assert response.status_code == 400, response.text  # the body is required: invalid, not 415
    assert response.json()["code"] == "invalid-request"


def test_the_media_type_rule_itself() -> None:
    assert media_type_accepted("application/json")
    assert media_type_accepted(" application/json ; charset = utf-8 ")
    assert not media_type_accepted("application/json;")
    assert not media_type_accepted("application/json; charset=utf-8; charset=utf-16")


# --- If-Match and If-None-Match --------------------------------------------------------------


async def test_two_if_match_headers_are_400(api: Api) -> None:
    node = await api.create()
    before = await snapshot(api, node["id"])
    for tags in [('"1"', '"1"'), ('"1"', '"2"')]:
        headers = [("If-Match", tag) for tag in tags]
        response = await api.client.patch(
            f"{api.base}/{node['id']}", json={"title": "New"}, headers=headers
        )
        assert_problem(response, 400, "invalid-request")
    await assert_unchanged(api, before)


@pytest.mark.parametrize("tag", ['"\u0661"', "\u0661", '"\uff11"', '"+1"', '"01x"'])
async def test_if_match_revisions_are_plain_digits(api: Api, tag: str) -> None:
    node = await api.create()
    response = await api.client.patch(
        f"{api.base}/{node['id']}", json={"title": "New"}, headers={b"If-Match": tag.encode()}
    )
    assert_problem(response, 400, "invalid-request")
    assert (await api.get(node["id"]))["revision"] == 1


async def test_a_weak_tag_never_matches_on_delete_or_rollback(api: Api) -> None:
    node = await api.create()
    url = f"{api.base}/{node['id']}"
    weak = {"If-Match": 'W/"1"'}
    assert_problem(await api.client.delete(url, headers=weak), 412, "stale-revision")
    rollback = await api.client.post(f"{url}/rollback", json={"version": 1}, headers=weak)
    assert_problem(rollback, 412, "stale-revision")
    assert (await api.get(node["id"]))["status"] == "active"


@pytest.mark.parametrize("query", [{}, ROUTED], ids=["fast", "routed"])
async def test_if_none_match_compares_weakly_on_the_prompt(api: Api, query: dict[str, str]) -> None:
    """RFC 9110 §13.1.2: If-None-Match uses the weak comparison, so W/"x" matches "x"."""
    await api.create(owner_agent_id="pilot")
    url = f"/v1/realms/{api.realm}/agents/pilot/prompt"
    tag = (await api.client.get(url)).headers["etag"]
    for header in [tag, f"W/{tag}", f'"cmp_other", W/{tag}', "*"]:
        response = await api.client.get(url, params=query, headers={"If-None-Match": header})
        assert response.status_code == 304, header
    other = await api.client.get(url, params=query, headers={"If-None-Match": 'W/"cmp_x"'})
    assert other.status_code == 200


# --- numbers ---------------------------------------------------------------------------------

NOT_PLAIN_DIGITS = ["%201", "1%20", "%D9%A1", "+1", "01", "00", "-1", "1e0", "1.0", "1_0",
                    "%EF%BC%91", "x", "0x1", "%C2%B2"]  # fmt: skip


@pytest.mark.parametrize("number", NOT_PLAIN_DIGITS)
async def test_a_version_number_is_plain_digits(api: Api, number: str) -> None:
    node = await api.create()
    response = await api.client.get(f"{api.base}/{node['id']}/versions/{number}")
    assert_problem(response, 400, "invalid-request")


QUERIES = [
    ("events", "after", ["1e3", "+1", "01", " 1", "%D9%A1", "1.0", "-0"]),
    ("events", "limit", ["1e1", "+5", "05", "5 ", "%D9%A1", "0x5"]),
    ("directives", "limit", ["1e1", "010", "%EF%BC%95"]),
    ("versions", "limit", ["1e1", "+1"]),
    ("history", "limit", ["1e1", "01"]),
    ("agents", "limit", ["1e1", "01"]),
    ("diff", "from", ["01", "+1", "1e0"]),
    ("diff", "to", ["01", "%D9%A1", "1e0"]),
    ("prompt", "wait", ["01", "+1", "1e1", "%D9%A1", "05"]),
    ("events/stream", "after", ["1e3", "01"]),
]


def _query_url(api: Api, node: dict[str, Any], where: str) -> str:
    directive = f"{api.base}/{node['id']}"
    return {
        "events": f"/v1/realms/{api.realm}/events",
        "events/stream": f"/v1/realms/{api.realm}/events/stream",
        "directives": api.base,
        "versions": f"{directive}/versions",
        "history": f"{directive}/history",
        "agents": f"/v1/realms/{api.realm}/agents",
        "diff": f"{directive}/diff",
        "prompt": f"/v1/realms/{api.realm}/agents/pilot/prompt",
    }[where]


@pytest.mark.parametrize(
    ("where", "name", "value"),
    [(where, name, value) for where, name, values in QUERIES for value in values],
)
async def test_query_numbers_are_plain_digits(api: Api, where: str, name: str, value: str) -> None:
    node = await api.create(owner_agent_id="pilot")
    url = _query_url(api, node, where)
    values = {"from": "1", "to": "1"} if where == "diff" else {}
    values[name] = value  # sent as written: some are percent-encoded already
    query = "&".join(f"{k}={v}" for k, v in values.items())
    headers: dict[str, str] = {}
    if where == "prompt":  # cached and matching: the fast path's long poll, were it to answer
        await api.client.get(url)
        headers["If-None-Match"] = (await api.client.get(url)).headers["etag"]
    response = await api.client.get(f"{url}?{query}", headers=headers)
    assert_problem(response, 400, "invalid-request")


async def test_plain_digits_are_still_read(api: Api) -> None:
    node = await api.create(owner_agent_id="pilot")
    directive = f"{api.base}/{node['id']}"
    for url in [f"{directive}/versions/1", f"{directive}/diff?from=1&to=1",
                f"/v1/realms/{api.realm}/events?after=0&limit=1", f"{api.base}?limit=500",
                f"/v1/realms/{api.realm}/agents/pilot/prompt?wait=0"]:  # fmt: skip
        response = await api.client.get(url)
        assert response.status_code == 200, f"{url}: {response.text}"


# --- encoded slashes -------------------------------------------------------------------------


async def test_an_encoded_slash_never_splits_a_segment(api: Api) -> None:
    node = await api.create(owner_agent_id="pilot")
    await api.client.get(f"/v1/realms/{api.realm}/agents/pilot/prompt")  # cached: fast path
    for path in [
        f"{api.base}/{node['id']}%2Fversions",  # decoded, it would list the versions
        f"{api.base}/{node['id']}%2fversions%2F1",
        f"/v1/realms/{api.realm}%2Fdirectives",
        f"/v1/realms/{api.realm}/agents/pilot%2Fx/prompt",
        f"/v1/realms/{api.realm}/agents/x%2F..%2Fpilot/prompt",
    ]:
        response = await api.client.get(path)
        assert response.status_code in (400, 404), f"{path}: {response.text}"
        assert_problem(response, 400, "invalid-request")
    # Encoded otherwise, a slash-free segment is read as usual.
    assert (await api.client.get(f"{api.base}/{node['id']}%3F")).status_code == 400
    assert (await api.client.get(f"{api.base}/%64ir_{node['id'][4:]}")).status_code == 200


# --- the fast path is behind the same edge (DESIGN §12) --------------------------------------


def _comparable(response: Response) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body, but the date and the request id (each answer has its own:
    tests/api/test_fastpath.py compares them with one sent in)."""
    assert response.headers["x-request-id"]
    headers = {
        k.lower(): v
        for k, v in response.headers.items()
        if k.lower() not in ("date", "x-request-id")
    }
    return response.status_code, headers, response.content


async def test_a_fast_answer_meets_the_same_edge_as_the_routed_one(api: Api) -> None:
    await api.create(owner_agent_id="pilot")
    url = f"/v1/realms/{api.realm}/agents/pilot/prompt"
    tag = (await api.client.get(url)).headers["etag"]  # cached now: the fast path may answer
    cases: list[tuple[str, dict[str, str], bytes | None]] = [
        ("plain", {}, None),
        ("not-modified", {"If-None-Match": tag}, None),
        ("a JSON body it does not read", {"Content-Type": "application/json"}, b"{}"),
        ("a text body", {"Content-Type": "text/plain"}, b"hello"),
        ("an untyped body", {}, b"{}"),
    ]
    for label, headers, body in cases:
        fast = await api.client.request("GET", url, headers=headers, content=body)
        routed = await api.client.request("GET", url, params=ROUTED, headers=headers, content=body)
        assert _comparable(fast) == _comparable(routed), label
    fast = await api.client.get(f"/v1/realms/{api.realm}/agents/pi%2Flot/prompt")
    routed = await api.client.get(f"/v1/realms/{api.realm}/agents/pi%2Flot/prompt", params=ROUTED)
    assert _comparable(fast) == _comparable(routed)
    assert_problem(fast, 400, "invalid-request")


def test_numbers_read_as_text_are_documented_as_integers(app: Litestar) -> None:
    document = app.openapi_schema.to_schema()
    seen = set()
    for operations in document["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] in {"limit", "after", "wait", "from", "to", "number"}:
                    assert parameter["schema"]["type"] == "integer", parameter
                    assert "oneOf" not in parameter["schema"], parameter
                    seen.add(parameter["name"])
    assert seen == {"limit", "after", "wait", "from", "to", "number"}


def test_the_body_timeout_is_a_setting() -> None:
    assert Settings().body_timeout_seconds == 30.0
    assert Settings.from_env({"CHARTER_BODY_TIMEOUT_SECONDS": "2.5"}).body_timeout_seconds == 2.5
