"""The OpenAPI document: served without a key, valid, and complete.

Complete means: every route the app serves is in it, every operation names the problem
responses it can give (as `application/problem+json`) and the key it needs, and the
interactive page loads it. `tests/fuzz` then holds the app to what the document says.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from litestar import Litestar
from litestar.routes import ASGIRoute, HTTPRoute
from litestar.testing import AsyncTestClient
from openapi_spec_validator import validate

from charter.api.auth import route_access
from charter.domain.access import Access
from charter.domain.events import EventType
from tests.support.api import Api

DOCUMENT = "/schema/openapi.json"
DOCS_PREFIX = "/schema"
PROBLEM = "application/problem+json"
PROBLEM_REF = "#/components/schemas/Problem"
METHODS = {"get", "put", "post", "patch", "delete"}
# What every operation that needs a key can answer, whatever its inputs.
KEYED = {"400", "401", "403", "429", "503"}
WRITES = {"post", "put", "patch", "delete"}


async def _public_get(client: AsyncTestClient[Litestar], path: str) -> httpx.Response:
    """A GET without the admin key the test client sends by default."""
    request = client.build_request("GET", path)
    del request.headers["Authorization"]
    return await client.send(request)


@pytest.fixture
async def document(client: AsyncTestClient[Litestar]) -> dict[str, Any]:
    response = await _public_get(client, DOCUMENT)
    assert response.status_code == 200, response.text
    assert "json" in response.headers["content-type"]
    served: dict[str, Any] = response.json()
    return served


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


CONSOLE_PREFIX = "/console"


def _served_routes(app: Litestar) -> dict[tuple[str, str], Access]:
    """(method, OpenAPI path) → access, for every route but the documentation's own."""
    served = {}
    for route in app.routes:
        if isinstance(route, ASGIRoute) and route.path == "/mcp":
            continue  # MCP's Streamable HTTP, not a REST operation: docs/mcp.md
        assert isinstance(route, HTTPRoute), route.path
        if route.path == DOCS_PREFIX or route.path.startswith(DOCS_PREFIX + "/"):
            continue
        # The console's HTML pages are not API operations (include_in_schema=False): left out
        # here, so the document must leave them out too (the check below).
        if route.path == CONSOLE_PREFIX or route.path.startswith(CONSOLE_PREFIX + "/"):
            continue
        for handler in route.route_handlers:
            for method in handler.http_methods:
                if method not in ("OPTIONS", "HEAD"):  # Litestar's own answers
                    served[(method.lower(), route.path_format)] = route_access(handler)
    return served


def _resolve(document: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        ref: str = node["$ref"]
        assert ref.startswith("#/"), ref
        node = document
        for part in ref[2:].split("/"):
            assert part in node, f"dangling reference {ref}"
            node = node[part]
    return node


def _references(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _references(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _references(value)]
    return []


async def test_the_document_is_public_and_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)  # raises on anything OpenAPI 3.1 refuses
    assert document["openapi"].startswith("3.1")
    for ref in _references(document):
        _resolve(document, {"$ref": ref})  # no reference left dangling


async def test_every_served_route_is_documented_and_nothing_else(
    app: Litestar, document: dict[str, Any]
) -> None:
    documented = {(method, path) for method, path, _ in _operations(document)}
    served = _served_routes(app)
    assert set(served) - documented == set(), "routes the document leaves out"
    assert documented - set(served) == set(), "operations the app does not serve"


async def test_every_operation_declares_its_security(
    app: Litestar, document: dict[str, Any]
) -> None:
    bearer = document["components"]["securitySchemes"]["bearer"]
    assert (bearer["type"], bearer["scheme"]) == ("http", "bearer")
    assert "security" not in document  # each operation says, so public ones can be public
    served = _served_routes(app)
    for method, path, operation in _operations(document):
        if served[(method, path)] is Access.PUBLIC:
            assert "security" not in operation, (method, path)
            assert not set(operation["responses"]) & {"401", "403"}, (method, path)
        else:
            assert operation.get("security") == [{"bearer": []}], (method, path)
            assert {"401", "403"} <= set(operation["responses"]), (method, path)


async def test_every_operation_declares_its_problem_responses(
    app: Litestar, document: dict[str, Any]
) -> None:
    served = _served_routes(app)
    for method, path, operation in _operations(document):
        responses: dict[str, Any] = operation["responses"]
        where = f"{method.upper()} {path}"
        for status, response in responses.items():
            if int(status) >= 400:
                content = response.get("content", {})
                assert list(content) == [PROBLEM], f"{where} {status}: {list(content)}"
                assert content[PROBLEM]["schema"] == {"$ref": PROBLEM_REF}, f"{where} {status}"
                assert response["description"], f"{where} {status}"
        if served[(method, path)] is Access.PUBLIC:
            continue
        expected = set(KEYED)
        if "{" in path:
            expected.add("404")
        if method in WRITES:
            expected |= {"409", "413", "422"}
        names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
        if "If-Match" in names:
            expected |= {"412", "428"}
        assert expected <= set(responses), f"{where} lacks {sorted(expected - set(responses))}"


async def test_success_responses_say_what_comes_back(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        responses = operation["responses"]
        where = f"{method.upper()} {path}"
        successes = [status for status in responses if status.startswith("2")]
        assert successes, where
        for status in successes:
            content = responses[status].get("content")
            if status == "204":
                assert content is None, f"{where}: a 204 has no body"
            elif path.endswith("/stream"):
                assert list(content) == ["text/event-stream"], where
            else:
                assert content, where
    prompt = document["paths"]["/v1/realms/{realm_id}/agents/{agent_id}/prompt"]["get"]
    assert "304" in prompt["responses"]  # If-None-Match, and long polls that time out


async def test_request_bodies_refuse_unknown_fields(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        body = operation.get("requestBody")
        if body is None:
            continue
        schema = _resolve(document, body["content"]["application/json"]["schema"])
        assert schema.get("additionalProperties") is False, f"{method.upper()} {path}"


async def test_a_real_problem_matches_the_documented_schema(
    api: Api, document: dict[str, Any]
) -> None:
    response = await api.client.get(f"{api.base}/dir_{'0' * 26}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith(PROBLEM)
    problem_schema = {**document["components"]["schemas"]["Problem"], "$defs": {}}
    Draft202012Validator(problem_schema).validate(response.json())


@pytest.mark.parametrize("page", ["/schema", "/schema/swagger"])
async def test_the_interactive_page_carries_the_document(
    client: AsyncTestClient[Litestar], document: dict[str, Any], page: str
) -> None:
    response = await _public_get(client, page)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "SwaggerUIBundle(" in html
    # Litestar's Swagger page embeds the document rather than fetching it: the same one.
    start = html.index("spec:", html.index("SwaggerUIBundle(")) + len("spec:")
    embedded, _ = json.JSONDecoder().raw_decode(html[start:].lstrip())
    assert embedded == document


OPERATION_ID = re.compile(r"[a-z][a-zA-Z]{1,30}")


async def test_operations_have_short_ids_tags_and_descriptions(document: dict[str, Any]) -> None:
    defined_tags = {tag["name"] for tag in document["tags"]}
    assert all(tag.get("description") for tag in document["tags"])
    ids = []
    for method, path, operation in _operations(document):
        where = f"{method.upper()} {path}"
        operation_id = operation["operationId"]
        assert OPERATION_ID.fullmatch(operation_id), f"{where}: {operation_id}"
        words = re.findall(r"[A-Z]?[a-z]+", operation_id)
        assert len(words) == len(set(words)), f"{where}: {operation_id} repeats a word"
        assert operation.get("description"), where
        assert operation.get("tags"), where
        assert set(operation["tags"]) <= defined_tags, where
        ids.append(operation_id)
    assert len(ids) == len(set(ids))
    named = {op["operationId"]: (method, path) for method, path, op in _operations(document)}
    assert named["createDirective"] == ("post", "/v1/realms/{realm_id}/directives")
    assert named["getPrompt"] == ("get", "/v1/realms/{realm_id}/agents/{agent_id}/prompt")
    assert named["streamPrompt"][1].endswith("/prompt/stream")
    assert named["inject"][1].endswith("/inject")
    assert named["healthz"] == ("get", "/healthz")


def _headers_of(document: dict[str, Any], response: dict[str, Any]) -> set[str]:
    for name, header in response.get("headers", {}).items():
        resolved = _resolve(document, header)
        assert resolved["description"], name
        assert resolved["schema"], name
    return set(response.get("headers", {}))


async def test_every_write_takes_an_idempotency_key(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        headers = {p["name"]: p for p in operation.get("parameters", []) if p["in"] == "header"}
        keyed_write = method in WRITES and "security" in operation
        assert ("Idempotency-Key" in headers) == keyed_write, f"{method.upper()} {path}"
        if keyed_write:
            key = headers["Idempotency-Key"]
            assert key["required"] is False
            assert key["schema"]["maxLength"] == 255
        for status, response in operation["responses"].items():
            replayable = keyed_write and status.startswith("2")
            replayed = "Idempotent-Replayed" in _headers_of(document, response)
            assert replayed == replayable, f"{method.upper()} {path} {status}"


async def test_responses_declare_their_headers(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        for status, response in operation["responses"].items():
            where = f"{method.upper()} {path} {status}"
            headers = _headers_of(document, response)
            assert "X-Request-Id" in headers, where
            if status == "201":
                assert "Location" in headers, where
            if status in ("429", "503"):
                assert "Retry-After" in headers, where
            if status == "412":
                assert "ETag" in headers, where
    by_id = {op["operationId"]: op for _, _, op in _operations(document)}
    for operation_id in ("createDirective", "getDirective", "updateDirective", "getPrompt"):
        responses = by_id[operation_id]["responses"]
        success = next(status for status in responses if status.startswith("2"))
        assert "ETag" in _headers_of(document, responses[success]), operation_id
    assert "ETag" in _headers_of(document, by_id["getPrompt"]["responses"]["304"])
    assert "ETag" in _headers_of(document, by_id["deactivateDirective"]["responses"]["204"])


async def test_conditional_and_resume_headers_are_documented(document: dict[str, Any]) -> None:
    by_id = {op["operationId"]: op for _, _, op in _operations(document)}
    wanted = {
        "getPrompt": "If-None-Match",
        "updateDirective": "If-Match",
        "deactivateDirective": "If-Match",
        "rollbackDirective": "If-Match",
        "streamEvents": "Last-Event-ID",
    }
    for operation_id, name in wanted.items():
        parameters = {p["name"]: p for p in by_id[operation_id]["parameters"]}
        assert parameters[name]["in"] == "header", operation_id
        assert parameters[name]["description"], operation_id


async def test_streams_describe_each_event_and_no_body_schema(document: dict[str, Any]) -> None:
    """`schema` would be read by generators as the whole body (ADR 0005): `x-itemSchema`."""
    schemas = document["components"]["schemas"]
    expected = {
        "streamPrompt": ("PromptEvent", "PromptDocument"),
        "streamEvents": ("FeedEvent", "EventOut"),
    }
    by_id = {op["operationId"]: op for _, _, op in _operations(document)}
    for operation_id, (event, data) in expected.items():
        media = by_id[operation_id]["responses"]["200"]["content"]["text/event-stream"]
        assert "schema" not in media, operation_id
        item = _resolve(document, media["x-itemSchema"])
        assert item is schemas[event]
        assert set(item["required"]) == {"event", "id", "data"}
        assert item["properties"]["data"]["contentMediaType"] == "application/json"
        assert item["properties"]["data"]["contentSchema"] == {
            "$ref": PROBLEM_REF.replace("Problem", data)
        }
    feed_event = _resolve(document, schemas["FeedEvent"]["properties"]["event"]["allOf"][0])
    assert set(feed_event["enum"]) == {t.value for t in EventType}


async def test_inject_messages_are_chat_messages(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    chat = {"$ref": "#/components/schemas/ChatMessage"}
    for name in ("InjectIn", "InjectOut"):
        assert schemas[name]["properties"]["messages"]["items"] == chat, name
    message = schemas["ChatMessage"]
    assert message["required"] == ["role"]
    assert message["properties"]["role"]["type"] == "string"
    content_types = [s.get("type") for s in message["properties"]["content"]["anyOf"]]
    assert content_types == ["string", "array", "null"]
    assert {"name", "tool_calls", "tool_call_id"} <= set(message["properties"])
    assert message.get("additionalProperties") is not False  # other fields pass through


async def test_inject_keeps_what_it_accepted_before(api: Api) -> None:
    """Typed in the document; on the wire, unlisted fields and roles still pass through."""
    agent = "typed-" + uuid.uuid4().hex[:8]
    await api.child(await api.create(), level="agent", owner_agent_id=agent)
    messages = [
        {"role": "ipython", "content": "x", "extra": {"kept": True}},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
    ]
    response = await api.client.post(
        f"/v1/realms/{api.realm}/agents/{agent}/inject", json={"messages": messages}
    )
    assert response.status_code == 200, response.text
    out = response.json()["messages"]
    assert out[1:] == messages  # system_first: the prompt comes first, the rest unchanged


@pytest.mark.parametrize(
    ("accept", "kind"),
    [
        ("application/json", "application/json"),
        ("application/json, text/html;q=0.5", "application/json"),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "text/html"),
        ("*/*", "text/html"),
    ],
)
async def test_schema_answers_json_to_a_client_that_asks(
    client: AsyncTestClient[Litestar], document: dict[str, Any], accept: str, kind: str
) -> None:
    request = client.build_request("GET", "/schema", headers={"Accept": accept})
    del request.headers["Authorization"]
    response = await client.send(request)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(kind)
    if kind == "application/json":
        assert response.json() == document


async def test_the_swagger_page_needs_nothing_from_the_internet(
    client: AsyncTestClient[Litestar],
) -> None:
    html = (await _public_get(client, "/schema/swagger")).text
    head = html[: html.index("<body>")]
    assert "http://" not in head, head
    assert "https://" not in head, head
    assets = re.findall(r'(?:src|href)=["\'](/schema/[^"\']+)["\']', head)
    assert len(assets) == 4, assets  # the bundle, the preset, the styles, the icon
    for path in assets:
        response = await _public_get(client, path)
        assert response.status_code == 200, path
        assert len(response.content) > 500, path
    bundle = await _public_get(client, "/schema/assets/swagger-ui-bundle.js")
    assert "javascript" in bundle.headers["content-type"]
    assert b"SwaggerUIBundle" in bundle.content
