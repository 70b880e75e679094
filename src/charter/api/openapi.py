"""The OpenAPI document: every operation says which key it needs and which problems it answers.

The problem responses are derived from what a route declares (its access, its method, its path
parameters, an `If-Match` header), in one place, so a new route is documented like its peers
and the document cannot drift from `problems.py` one controller at a time.

`finish` then adds what Litestar's generator cannot say: the `Idempotency-Key` of every write,
the response headers, the chat messages of `/inject` and the events of the two streams
(docs/decisions/0005-openapi-streams.md). The interactive page loads Swagger UI from this
server (the assets of the `swagger-ui-bundle-v2` package), so it works offline.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Litestar, Request, Response, Router
from litestar._openapi.plugin import OpenAPIPlugin
from litestar._openapi.schema_generation import SchemaCreator
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.enums import HttpMethod
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, Contact, Reference, Schema, SecurityScheme, Tag
from litestar.params import KwargDefinition
from litestar.plugins import ReceiveRoutePlugin
from litestar.routes import BaseRoute, HTTPRoute
from litestar.static_files import create_static_files_router
from litestar.typing import FieldDefinition
from msgspec import Struct
from swagger_ui_bundle import swagger_ui_path

from charter.api.auth import ACCESS, route_access
from charter.api.problems import PROBLEM_MEDIA_TYPE
from charter.api.wire import ChatMessage, InputItem, Problem, SystemBlock
from charter.domain.access import Access
from charter.domain.events import EventType

BEARER = "bearer"
OPENAPI_PATH = "/schema"
ASSETS_PATH = "/assets"  # under OPENAPI_PATH: Swagger UI's scripts and styles
REQUEST_ID_HEADER = "X-Request-Id"
_WRITES = frozenset({HttpMethod.POST, HttpMethod.PATCH, HttpMethod.PUT, HttpMethod.DELETE})

# What each status means here: the stable codes of docs/api.md, by status.
_PROBLEMS = {
    400: "invalid-request or content-too-large: a bad id, parameter, header or body",
    401: "unauthenticated: no key, or an unknown or revoked one",
    403: "forbidden: the key's role may not do this",
    404: "not-found: no such realm or object, or one outside the key's realms",
    408: "request-timeout: the request body did not arrive in time",
    409: "a conflict: stale-revision (expected revision in the body), cycle-detected, "
    "invalid-transition, has-open-children, already-exists, rollout-in-progress, "
    "already-claimed (with holder and expires_at), not-due (paused, deactivated, or before "
    "not_before), or idempotency-key-in-use",
    412: "stale-revision: the If-Match revision is not the current one",
    413: "payload-too-large: the request body is over the server's limit",
    415: "unsupported-media-type: the request body is not application/json",
    422: "invalid-hierarchy, undefined-variable (a prompt would hold an undefined template "
    "variable), or idempotency-key-reused with a different request",
    428: "precondition-required: a compare-and-swap write without an expected revision",
    429: "rate-limited: too many requests for this key; see Retry-After",
    503: "unavailable: the database or cache does not answer; see Retry-After",
}


def problem_response(status: int) -> ResponseSpec:
    return ResponseSpec(
        data_container=Problem,
        media_type=PROBLEM_MEDIA_TYPE,
        description=_PROBLEMS[status],
        generate_examples=False,
    )


def _json_of(component: str) -> KwargDefinition:
    """A string field holding JSON that the named component schema describes."""
    reference = Reference(ref=f"#/components/schemas/{component}")
    return KwargDefinition(
        schema_extra={"contentMediaType": "application/json", "contentSchema": reference}
    )


class PromptEvent(Struct):
    """One event of an agent's prompt stream; heartbeats are comments, not events."""

    event: Literal["prompt"]
    id: Annotated[str, KwargDefinition(description="the composition id")]
    data: Annotated[str, _json_of("PromptDocument")]


class FeedEvent(Struct):
    """One event of a realm's event stream, named by its type; heartbeats are comments."""

    event: Annotated[EventType, KwargDefinition(description="the event type")]
    id: Annotated[str, KwargDefinition(description="the event's seq: resume with Last-Event-ID")]
    data: Annotated[str, _json_of("EventOut")]


def event_stream(event: type[Struct], description: str) -> ResponseSpec:
    """Server-sent events; `finish` moves the event's schema to `x-itemSchema` (ADR 0005)."""
    return ResponseSpec(
        data_container=event,
        media_type="text/event-stream",
        description=description,
        generate_examples=False,
    )


def problem_statuses(route: HTTPRoute, handler: HTTPRouteHandler) -> set[int]:
    """The problem statuses `handler` can answer on `route`."""
    if route_access(handler) is Access.PUBLIC:
        return set()
    statuses = {400, 401, 403, 429, 503}
    if route.path_parameters:
        statuses.add(404)
    if handler.http_methods & _WRITES:
        statuses |= {409, 413, 422}  # every write is idempotent by key: in use, reused
        statuses |= {408, 415}  # writes carry bodies: late or not JSON (api/edges.py)
    if "if_match" in handler.parsed_fn_signature.parameters:
        statuses |= {412, 428}  # compare-and-swap
    return statuses


class DocumentedProblems(ReceiveRoutePlugin):
    """Fills in each operation's problem responses and security as its route is registered.

    A route's own `responses` win: they document what this derivation cannot know.
    """

    def receive_route(self, route: BaseRoute) -> None:
        if not isinstance(route, HTTPRoute):
            return
        for handler in route.route_handlers:
            if not handler.resolve_include_in_schema():
                continue
            derived = {s: problem_response(s) for s in sorted(problem_statuses(route, handler))}
            if handler.status_code == 204:
                derived[204] = ResponseSpec(None, description="done; no content")
            handler.responses = {**derived, **(handler.responses or {})}
            if route_access(handler) is not Access.PUBLIC:
                handler.security = [{BEARER: []}]


class ClosedRequestSchemas(StructSchemaPlugin):
    """Request structs refuse unknown fields (`forbid_unknown_fields`): their schemas say so.

    Litestar's own struct plugin, with `additionalProperties: false` where msgspec refuses.
    """

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        return super().is_plugin_supported_field(field_definition) and bool(
            field_definition.type_.__struct_config__.forbid_unknown_fields
        )

    def to_openapi_schema(
        self, field_definition: FieldDefinition, schema_creator: SchemaCreator
    ) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        schema.additional_properties = False
        return schema


class LocalSwagger(SwaggerRenderPlugin):
    """Swagger UI from this server: the page needs nothing from the internet."""

    def __init__(self) -> None:
        assets = OPENAPI_PATH + ASSETS_PATH
        super().__init__(
            js_url=f"{assets}/swagger-ui-bundle.js",
            css_url=f"{assets}/swagger-ui.css",
            standalone_preset_js_url=f"{assets}/swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/png' href='{assets}/favicon-32x32.png'>",
        )

    def receive_router(self, router: Router) -> None:
        super().receive_router(router)
        router.register(
            create_static_files_router(
                ASSETS_PATH,
                directories=[str(swagger_ui_path)],
                include_in_schema=False,
                opt={ACCESS: Access.PUBLIC},
            )
        )


_TAGS = {
    "realms": "Realms: the tenants, each with its own tree and revision",
    "directives": "Directives: versioned, compare-and-swap, in a tree",
    "agents": "What agents read: their composed prompt, its stream, and inject",
    "rollouts": "Staged rollouts of a version, the outcomes of their arms, and the guard",
    "claims": "Work coordination: claims with leases, heartbeats and finishes",
    "schedules": "Timed changes of a directive, each run once",
    "variables": "Template variables' values: agents' profiles and the realm's defaults",
    "events": "The realm's change feed, by cursor or as server-sent events",
    "webhooks": "Signed deliveries of the realm's events to URLs, and their delivery log",
    "keys": "API keys (admin)",
    "system": "Liveness, readiness and metrics",
}


def _negotiate(request: Request[Any, Any, Any]) -> Response[Any] | None:
    """`/schema` answers the document as JSON to a client that prefers JSON to HTML."""
    if request.url.path.rstrip("/") != OPENAPI_PATH:
        return None
    best = request.accept.best_match(["text/html", "application/json"], default="text/html")
    if best != "application/json":
        return None
    return Response(document(request.app), media_type="application/json")


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Charter",
        version="1",
        description="A hierarchical, versioned store of directives for fleets of LLM agents.",
        contact=Contact(name="Charter", url="https://charter.dev"),
        tags=[Tag(name=name, description=text) for name, text in _TAGS.items()],
        render_plugins=[LocalSwagger()],
        components=Components(
            security_schemes={
                BEARER: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="an API key: Authorization: Bearer chk_…",
                )
            }
        ),
        # The document and its pages are public, and say so like every route does; they are
        # not operations of the API, so the document leaves them out.
        openapi_router=Router(
            OPENAPI_PATH,
            route_handlers=[],
            opt={ACCESS: Access.PUBLIC},
            include_in_schema=False,
            before_request=_negotiate,
        ),
    )


def document(app: Litestar) -> dict[str, Any]:
    """The document as `/schema/openapi.json` serves it (built, and finished, once)."""
    served: dict[str, Any] = app.plugins.get(OpenAPIPlugin).provide_openapi_schema()
    if "headers" not in served.get("components", {}):
        finish(served)  # the plugin keeps this dict: once per app
    return served


# What Litestar's generator cannot say, added to the document it generates.
_SCHEMAS = "#/components/schemas/"
_WRITE_METHODS = frozenset(method.lower() for method in _WRITES)
_HEADERS = "#/components/headers/"
_ETAG_OPERATIONS = frozenset(
    {
        "createDirective",
        "getDirective",
        "updateDirective",
        "deactivateDirective",
        "rollbackDirective",
        "getPrompt",
    }
)
_HEADER_DOCS: dict[str, dict[str, Any]] = {
    "ETag": {
        "description": 'the directive\'s revision ("3"), the current one on a stale-revision '
        "problem; or the prompt's composition id",
        "schema": {"type": "string"},
    },
    "Location": {"description": "the new resource's path", "schema": {"type": "string"}},
    "Retry-After": {
        "description": "seconds to wait before trying again",
        "schema": {"type": "integer", "minimum": 0},
    },
    "Idempotent-Replayed": {
        "description": "true: the first response to this Idempotency-Key, replayed",
        "schema": {"type": "string", "enum": ["true"]},
    },
    REQUEST_ID_HEADER: {
        "description": "the request's id, as in the server's log lines",
        "schema": {"type": "string"},
    },
}
_PARAMETER_DOCS = {
    "If-None-Match": "the ETag (composition id) the agent holds: 304 while it is current",
    "Last-Event-ID": "the seq of the last event received: the stream resumes after it",
}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "a key of the client's choosing: a retry with the same key and request "
    "replays the first response (Idempotent-Replayed: true) instead of writing again; the "
    "same key with another request is refused (422)",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]{1,255}$"},
}


def _header_ref(name: str) -> dict[str, str]:
    return {"$ref": _HEADERS + name.replace("-", "")}


def _response_headers(operation: dict[str, Any], method: str, status: str) -> list[str]:
    """The headers the response `status` of `operation` carries, by name."""
    names = [REQUEST_ID_HEADER]
    code = int(status)
    keyed = "security" in operation
    if code < 300 and keyed and method in _WRITE_METHODS:
        names.append("Idempotent-Replayed")
    if code == 201:
        names.append("Location")
    if (code < 400 and operation["operationId"] in _ETAG_OPERATIONS) or code in (409, 412):
        names.append("ETag")  # a stale revision names the current one
    if code in (429, 503):
        names.append("Retry-After")
    return names


def _item_schema(media: dict[str, Any]) -> None:
    """A stream's event schema, from `schema` (read by generators as the whole body) to
    `x-itemSchema`, which is OpenAPI 3.2's `itemSchema` as a 3.1 extension (ADR 0005)."""
    media["x-itemSchema"] = media.pop("schema")


def finish(served: dict[str, Any]) -> None:
    components = served.setdefault("components", {})
    components["headers"] = {
        name.replace("-", ""): doc for name, doc in sorted(_HEADER_DOCS.items())
    }
    schemas = components.setdefault("schemas", {})
    _, chat = msgspec.json.schema_components(
        [ChatMessage, InputItem, SystemBlock], ref_template=_SCHEMAS + "{name}"
    )
    schemas.update(chat)
    for name in ("InjectIn", "InjectOut"):
        fields = schemas[name]["properties"]
        fields["messages"]["items"] = {"$ref": _SCHEMAS + "ChatMessage"}
        for field, item in (("input", "InputItem"), ("system", "SystemBlock")):
            for option in fields[field].get("oneOf", fields[field].get("anyOf", [])):
                if option.get("type") == "array":
                    option["items"] = {"$ref": _SCHEMAS + item}
    for item in served.get("paths", {}).values():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            parameters = operation.setdefault("parameters", [])
            for parameter in parameters:
                if parameter.get("in") == "header" and parameter["name"] in _PARAMETER_DOCS:
                    parameter.setdefault("description", _PARAMETER_DOCS[parameter["name"]])
            if method in _WRITE_METHODS and "security" in operation:
                parameters.append(dict(IDEMPOTENCY_KEY))
            if not parameters:
                del operation["parameters"]
            for status, response in operation["responses"].items():
                headers = response.setdefault("headers", {})
                for name in _response_headers(operation, method, status):
                    headers[name] = _header_ref(name)
                media = response.get("content", {}).get("text/event-stream")
                if media is not None:
                    _item_schema(media)
