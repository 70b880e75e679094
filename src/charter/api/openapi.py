"""The OpenAPI document: every operation says which key it needs and which problems it answers.

The problem responses are derived from what a route declares (its access, its method, its path
parameters, an `If-Match` header), in one place, so a new route is documented like its peers
and the document cannot drift from `problems.py` one controller at a time.
"""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Router
from litestar._openapi.schema_generation import SchemaCreator
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.enums import HttpMethod
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, Reference, Schema, SecurityScheme
from litestar.params import KwargDefinition
from litestar.plugins import ReceiveRoutePlugin
from litestar.routes import BaseRoute, HTTPRoute
from litestar.typing import FieldDefinition
from msgspec import Struct

from charter.api.auth import ACCESS, route_access
from charter.api.problems import PROBLEM_MEDIA_TYPE
from charter.api.wire import Problem
from charter.domain.access import Access

BEARER = "bearer"
OPENAPI_PATH = "/schema"
_WRITES = frozenset({HttpMethod.POST, HttpMethod.PATCH, HttpMethod.PUT, HttpMethod.DELETE})

# What each status means here: the stable codes of docs/api.md, by status.
_PROBLEMS = {
    400: "invalid-request or content-too-large: a bad id, parameter, header or body",
    401: "unauthenticated: no key, or an unknown or revoked one",
    403: "forbidden: the key's role may not do this",
    404: "not-found: no such realm or object, or one outside the key's realms",
    408: "request-timeout: the request body did not arrive in time",
    409: "a conflict: stale-revision (expected revision in the body), cycle-detected, "
    "invalid-transition, has-open-children, already-exists, or idempotency-key-in-use",
    412: "stale-revision: the If-Match revision is not the current one",
    413: "payload-too-large: the request body is over the server's limit",
    415: "unsupported-media-type: the request body is not application/json",
    422: "invalid-hierarchy, or idempotency-key-reused with a different request",
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

    event: Annotated[str, KwargDefinition(description="the event type, e.g. directive.created")]
    id: Annotated[str, KwargDefinition(description="the event's seq: resume with Last-Event-ID")]
    data: Annotated[str, _json_of("EventOut")]


def event_stream(event: type[Struct], description: str) -> ResponseSpec:
    """Server-sent events, each described as OpenAPI 3.1 tools read them: event, id, data."""
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


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Charter",
        version="1",
        description="A hierarchical, versioned store of directives for fleets of LLM agents.",
        render_plugins=[SwaggerRenderPlugin()],
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
        ),
    )
