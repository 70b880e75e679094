"""Bad query parameters, cursors and version numbers on the read endpoints: a 4xx, never a 5xx."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.api import Api
from tests.support.refusals import (
    MARKER,
    assert_problem,
    assert_refused,
    cursor,
    send,
)

# --- reads: query parameters, cursors, version numbers ----------------------------------------

BAD_LIMITS = [
    pytest.param("0", id="zero"),
    pytest.param("501", id="501"),
    pytest.param("-1", id="negative"),
    pytest.param("x", id="word"),
    pytest.param("1.5", id="decimal"),
    pytest.param("", id="empty"),
    pytest.param(str(10**20), id="huge"),
]

BAD_CURSORS = [
    pytest.param("!!!", id="not-base64"),
    pytest.param("%%%", id="percent"),
    pytest.param("AAAA", id="nul-bytes"),
    pytest.param("_w", id="not-utf8"),
    pytest.param("", id="empty"),
    pytest.param("a", id="one-char"),
]


def _paginated(root_id: str) -> list[str]:
    return [
        "/v1/realms/{r}/directives",
        f"/v1/realms/{{r}}/directives/{root_id}/versions",
        f"/v1/realms/{{r}}/directives/{root_id}/history",
        "/v1/realms/{r}/events",
        "/v1/realms",
    ]


@pytest.mark.parametrize("limit", BAD_LIMITS)
async def test_every_list_refuses_a_bad_limit(api: Api, root: dict[str, Any], limit: str) -> None:
    for path in _paginated(root["id"]):
        response = await api.client.get(path.format(r=api.realm), params={"limit": limit})
        assert response.status_code == 400, (path, response.text)
        assert_problem(response, 400, "invalid-request")


@pytest.mark.parametrize("limit", ["1", "500"])
async def test_every_list_accepts_limits_at_the_edges(
    api: Api, root: dict[str, Any], limit: str
) -> None:
    for path in _paginated(root["id"]):
        response = await api.client.get(path.format(r=api.realm), params={"limit": limit})
        assert response.status_code == 200, (path, response.text)
        assert len(response.json()["items"]) <= int(limit)


@pytest.mark.parametrize("value", BAD_CURSORS)
async def test_keyset_lists_refuse_a_garbage_cursor(
    api: Api, root: dict[str, Any], value: str
) -> None:
    for path in _paginated(root["id"]):
        if path.endswith("/events"):
            continue  # the feed's cursor is `after`, checked below
        response = await api.client.get(path.format(r=api.realm), params={"cursor": value})
        assert response.status_code == 400, (path, response.text)
        assert_problem(response, 400, "invalid-request")


NEVER_ISSUED = [
    pytest.param("abc", id="word"),
    pytest.param("-1", id="negative"),
    pytest.param("1.5", id="decimal"),
    pytest.param("9" * 19, id="19-digits"),
    pytest.param(" 1", id="space"),
    pytest.param("\u0661", id="arabic-digit"),
    pytest.param("\u00b2", id="superscript-digit"),
]


@pytest.mark.parametrize("raw", NEVER_ISSUED)
async def test_numeric_cursors_refuse_what_the_server_never_issues(
    api: Api, root: dict[str, Any], raw: str
) -> None:
    for kind in ("versions", "history"):
        response = await send(api, "GET", f"/{root['id']}/{kind}?cursor={cursor(raw)}")
        assert response.status_code == 400, (kind, response.text)
        assert_problem(response, 400, "invalid-request")


@pytest.mark.parametrize("raw", [str(2**31), "9" * 18])
async def test_numeric_cursors_past_any_version_list_from_the_newest(
    api: Api, root: dict[str, Any], raw: str
) -> None:
    for kind in ("versions", "history"):
        response = await send(api, "GET", f"/{root['id']}/{kind}?cursor={cursor(raw)}")
        assert response.status_code == 200, (kind, response.text)
        assert len(response.json()["items"]) == 2


@pytest.mark.parametrize(
    "params",
    [
        {"level": "org"},
        {"status": "done"},
        {"priority": "urgent"},
        {"parent_id": "nope"},
        {"parent_id": "dir_" + "0" * 26 + "\n"},
        {"roots": "maybe"},
        {"owner_agent_id": "a b"},
        {"owner_agent_id": "lead\x00"},
        {"owner_agent_id": ""},
        {"key": "Root"},
        {"key": "root\x00"},
        {"key": ""},
    ],
    ids=lambda params: "=".join(next(iter(params.items()))).encode("unicode_escape").decode(),
)
async def test_directive_list_refuses_bad_filters(
    api: Api, root: dict[str, Any], params: dict[str, str]
) -> None:
    assert_problem(await api.client.get(api.base, params=params), 400, "invalid-request")


@pytest.mark.parametrize(
    "params",
    [
        {"after": "-1"},
        {"after": "x"},
        {"after": "1.5"},
        {"after": str(2**63)},
        {"after": str(10**30)},
        {"type": "directive.exploded"},
        {"type": "DIRECTIVE.CREATED"},
        {"directive_id": "nope"},
        {"directive_id": "dir_" + "0" * 26 + "\x00"},
    ],
    ids=lambda params: "=".join(next(iter(params.items()))).encode("unicode_escape").decode(),
)
async def test_event_feed_refuses_bad_parameters(
    api: Api, root: dict[str, Any], params: dict[str, str]
) -> None:
    response = await api.client.get(f"/v1/realms/{api.realm}/events", params=params)
    assert_problem(response, 400, "invalid-request")


async def test_event_feed_accepts_the_largest_cursor(api: Api, root: dict[str, Any]) -> None:
    response = await api.client.get(f"/v1/realms/{api.realm}/events?after={2**63 - 1}")
    assert response.status_code == 200, response.text
    assert response.json()["items"] == []


@pytest.mark.parametrize("number", ["0", "3", str(2**31 - 1), str(2**31), str(2**63), str(10**30)])
async def test_a_version_that_was_never_made_is_404(
    api: Api, root: dict[str, Any], number: str
) -> None:
    response = await send(api, "GET", f"/{root['id']}/versions/{number}")
    assert_problem(response, 404, "not-found")


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?from=1",
        "?to=2",
        "?from=&to=2",
        "?from=x&to=2",
        "?from=1&to=1.5",
        "?from=0&to=2",
        "?from=1&to=-2",
        "?from=1&to=2&to=x",
    ],
    ids=["none", "no-to", "no-from", "from-empty", "from-word", "to-decimal", "from-zero",
         "to-negative", "to-twice-with-garbage"],
)  # fmt: skip
async def test_diff_refuses_missing_or_invalid_versions(
    api: Api, root: dict[str, Any], query: str
) -> None:
    response = await send(api, "GET", f"/{root['id']}/diff{query}")
    assert_problem(response, 400, "invalid-request")


@pytest.mark.parametrize("query", ["?from=1&to=3", "?from=99&to=1", f"?from=1&to={2**31}",
                                   f"?from={10**30}&to=1"])  # fmt: skip
async def test_diff_with_a_version_never_made_is_404(
    api: Api, root: dict[str, Any], query: str
) -> None:
    assert_problem(await send(api, "GET", f"/{root['id']}/diff{query}"), 404, "not-found")


# --- agent-facing reads: prompt, inject, compositions, agents ----------------------------------


@pytest.mark.parametrize("wait", ["-1", "61", "x", "1.5", str(10**30)])
async def test_prompt_refuses_a_wait_out_of_range(
    api: Api, root: dict[str, Any], wait: str
) -> None:
    response = await api.client.get(
        f"/v1/realms/{api.realm}/agents/lead/prompt", params={"wait": wait}
    )
    assert_problem(response, 400, "invalid-request")


BAD_AGENTS = [
    pytest.param("a%20b", id="space"),
    pytest.param("a%2Cb", id="comma"),
    pytest.param("ag%C3%A9nt", id="non-ascii"),
    pytest.param("a" * 129, id="129-chars"),
    pytest.param("lead%0A", id="trailing-newline"),
    pytest.param("agent%00", id="nul"),
]


@pytest.mark.parametrize("agent", BAD_AGENTS)
@pytest.mark.parametrize("route", ["prompt", "inject"])
async def test_agent_routes_refuse_a_malformed_agent_id(
    api: Api, root: dict[str, Any], agent: str, route: str
) -> None:
    url = f"/v1/realms/{api.realm}/agents/{agent}/{route}"
    if route == "inject":
        response = await api.client.post(url, json={"messages": []})
    else:
        response = await api.client.get(url)
    assert_problem(response, 400, "invalid-request")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param([], id="array"),
        pytest.param({}, id="no-messages"),
        pytest.param({"messages": "hello"}, id="messages-string"),
        pytest.param({"messages": [f"{MARKER} hello"]}, id="message-string"),
        pytest.param({"messages": [{"content": f"{MARKER} hello"}]}, id="no-role"),
        pytest.param({"messages": [{"role": 1, "content": f"{MARKER} hi"}]}, id="role-int"),
        pytest.param({"messages": [], "model": "gpt"}, id="unknown-field"),
    ],
)
async def test_inject_refuses_bad_bodies_without_echoing_them(
    api: Api, root: dict[str, Any], body: Any
) -> None:
    request = api.client.post(f"/v1/realms/{api.realm}/agents/lead/inject", json=body)
    await assert_refused(api, request, 400, "invalid-request")


@pytest.mark.parametrize(
    "composition",
    ["cmp_x", "cmp_" + "0" * 63, "cmp_" + "G" * 64, "CMP_" + "0" * 64, "cmp_" + "0" * 64 + "%0A"],
    ids=["short", "63-hex", "not-hex", "upper-prefix", "trailing-newline"],
)
async def test_compositions_refuse_a_malformed_id(
    api: Api, root: dict[str, Any], composition: str
) -> None:
    response = await api.client.get(f"/v1/realms/{api.realm}/compositions/{composition}")
    assert_problem(response, 400, "invalid-request")


async def test_an_unknown_composition_or_agent_is_404(api: Api, root: dict[str, Any]) -> None:
    base = f"/v1/realms/{api.realm}"
    assert_problem(await api.client.get(f"{base}/compositions/cmp_{'0' * 64}"), 404, "not-found")
    assert_problem(await api.client.get(f"{base}/agents/nobody/prompt"), 404, "not-found")
    request = api.client.post(f"{base}/agents/nobody/inject", json={"messages": []})
    assert_problem(await request, 404, "not-found")
