"""Nesting depth: bad input at any depth is a 4xx, never a 5xx (DESIGN §12, issue 11).

Metadata nested 950 to 960 levels deep answered 500: msgspec decoded it, then the JSON encoding
for the database ran out of Python's recursion limit. Every free-form JSON value now has one
explicit limit (MAX_JSON_DEPTH); deeper is 400 `invalid-request`. The fuzz below nests arrays
and objects at every field of every write body, up to far beyond any limit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from charter.domain.metadata import MAX_JSON_DEPTH, json_depth
from tests.support.api import Api
from tests.support.refusals import assert_problem

NEST = "__nest__"
# Both sides of the limit, then the depths that used to break (msgspec's own limit is near
# 1 000 and depends on the stack in use), then far beyond.
DEPTHS = [1, MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, 100, 945, 950, 955, 960]
DEPTHS += [965, 980, 1_000, 5_000]


def nested(depth: int) -> str:
    """JSON text: arrays and objects alternately, `depth` deep, around a number."""
    opens = ["[" if i % 2 == 0 else '{"a":' for i in range(depth)]
    closes = ["]" if i % 2 == 0 else "}" for i in reversed(range(depth))]
    return "".join(opens) + "1" + "".join(closes)


def body_with(template: Any, depth: int) -> bytes:
    """The template as JSON, with its NEST placeholder replaced by `nested(depth)`."""
    text = json.dumps(template)
    assert text.count(json.dumps(NEST)) == 1
    return text.replace(json.dumps(NEST), nested(depth)).encode()


def at(base: dict[str, Any], name: str) -> dict[str, Any]:
    return {**base, name: NEST}


@dataclass
class Route:
    """One write body, and templates whose NEST sits in a free-form JSON value."""

    method: str
    path: str
    base: dict[str, Any]
    # (template, depth of the free-form value around NEST): within the limit, accepted.
    free: list[tuple[Any, int]] = field(default_factory=list)

    def templates(self) -> list[tuple[str, Any, int | None]]:
        """(label, template, free-form offset or None) for every field, an unknown field, the
        whole body and the free-form values."""
        out: list[tuple[str, Any, int | None]] = [
            (name, at(self.base, name), None) for name in self.base
        ]
        out.append(("unknown-field", at(self.base, "unknown"), None))
        out.append(("whole-body", NEST, None))
        out.extend((f"free-{i}", t, offset) for i, (t, offset) in enumerate(self.free))
        return out


async def _routes(api: Api) -> list[Route]:
    node = await api.create(title="T", body="B", metadata={"k": 1}, owner_agent_id="pilot")
    directive = f"{api.base}/{node['id']}"
    agent = f"/v1/realms/{api.realm}/agents/pilot"
    create = {"level": "realm", "title": "T", "body": "B", "metadata": {}, "message": "m"}
    patch = {"title": "T2", "metadata": {}, "message": "m", "expected_revision": 1}
    message = {"role": "user", "content": "hi"}
    return [
        Route("POST", "/v1/realms", {"id": "x-nested", "name": "n"}),
        Route("POST", "/v1/keys", {"role": "reader", "realms": [api.realm], "name": "n"}),
        Route("POST", api.base, create, free=[({**create, "metadata": {"a": NEST}}, 1)]),
        Route("PATCH", directive, patch, free=[({"metadata": {"a": NEST}}, 1)]),
        Route("POST", f"{directive}/rollback", {"version": 1, "expected_revision": 1}),
        Route("DELETE", directive, {"expected_revision": 1, "message": "m"}),
        Route(
            "POST",
            f"{agent}/inject",
            {"messages": [message]},
            free=[
                ({"messages": [{**message, "content": NEST}]}, 2),
                ({"messages": [message, {**message, "parts": [{"x": NEST}]}]}, 4),
            ],
        ),
    ]


async def _if_match(api: Api, route: Route) -> dict[str, str]:
    """PATCH names the current revision, so an accepted one does not block the next."""
    if route.method != "PATCH":
        return {}
    response = await api.client.get(route.path)
    assert response.status_code == 200, response.text
    return {"If-Match": response.headers["etag"]}


async def test_nesting_at_every_field_of_every_write_body_is_never_a_5xx(api: Api) -> None:
    for route in await _routes(api):
        for label, template, offset in route.templates():
            for depth in DEPTHS:
                headers = {**_JSON, **await _if_match(api, route)}
                response = await api.client.request(
                    route.method, route.path, content=body_with(template, depth), headers=headers
                )
                where = f"{route.method} {route.path} {label} at depth {depth}"
                assert response.status_code < 500, f"{where}: {response.text}"
                if offset is None:
                    assert 400 <= response.status_code < 500, where
                elif offset + depth <= MAX_JSON_DEPTH:
                    assert response.status_code < 300, f"{where}: {response.text}"
                else:
                    assert_problem(response, 400, "invalid-request")


@pytest.mark.parametrize("method", ["POST", "PATCH"])
@pytest.mark.parametrize("depth", [955, 960])
async def test_metadata_at_the_depths_that_broke_is_refused(
    api: Api, method: str, depth: int
) -> None:
    node = await api.create()
    body = body_with({"metadata": {"a": NEST}, "level": "realm", "title": "T", "body": "B"}, depth)
    if method == "PATCH":
        body = body_with({"metadata": {"a": NEST}}, depth)
        url = f"{api.base}/{node['id']}"
        response = await api.client.patch(
            url, content=body, headers={"If-Match": f'"{node["revision"]}"', **_JSON}
        )
    else:
        response = await api.client.post(api.base, content=body, headers=_JSON)
    assert_problem(response, 400, "invalid-request")
    assert (await api.get(node["id"]))["revision"] == node["revision"]


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH])
async def test_metadata_within_the_limit_is_kept_as_sent(api: Api, depth: int) -> None:
    value = json.loads(nested(depth - 1))  # inside the metadata object: one level more
    node = await api.create(metadata={"a": value})
    assert json_depth(node["metadata"]) == depth
    assert (await api.get(node["id"]))["metadata"] == {"a": value}


_JSON = {"Content-Type": "application/json"}
