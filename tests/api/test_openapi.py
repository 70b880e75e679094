"""The OpenAPI document: served without a key, valid, and complete.

Complete means: every route the app serves is in it, every operation names the problem
responses it can give (as `application/problem+json`) and the key it needs, and the
interactive page loads it. `tests/fuzz` then holds the app to what the document says.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient
from openapi_spec_validator import validate

from charter.api.auth import route_access
from charter.domain.access import Access
from tests.support.api import Api

DOCUMENT = "/schema/openapi.json"
DOCS_PREFIX = "/schema"
PROBLEM = "application/problem+json"
PROBLEM_REF = "#/components/schemas/Problem"
METHODS = {"get", "put", "post", "patch", "delete"}
# What every operation that needs a key can answer, whatever its inputs.
KEYED = {"400", "401", "403", "429", "503"}
WRITES = {"post", "patch", "delete"}


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


def _served_routes(app: Litestar) -> dict[tuple[str, str], Access]:
    """(method, OpenAPI path) → access, for every route but the documentation's own."""
    served = {}
    for route in app.routes:
        assert isinstance(route, HTTPRoute), route.path
        if route.path == DOCS_PREFIX or route.path.startswith(DOCS_PREFIX + "/"):
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
