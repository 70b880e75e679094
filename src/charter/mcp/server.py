"""Charter as an MCP server: the prompt `directives`, three kinds of resource, four tools.

One definition for both transports (ADR 0009). Every call goes to the Charter API through
`charter.client` with the caller's own key, so an MCP client gets exactly what that key may
have over REST: the same roles, realms, validation and CAS. `Link` is what a transport hands
in per request: that client, the session's home realm and agent, and how to follow a prompt.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar

import anyio
import mcp_types as types
import msgspec
from anyio.abc import TaskGroup
from mcp.server import Server
from mcp.server.context import ServerRequestContext
from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS
from msgspec import UNSET, Meta, UnsetType

from charter.client import AsyncCharter, errors
from charter.client import models as m
from charter.ids import SUFFIX

NAME = "charter"
PROMPT_NAME = "directives"
PROMPT_DESCRIPTION = (
    "The agent's composed directives. Meant as the system prompt: MCP prompt messages carry "
    "only the user and assistant roles, so the text comes as one user message; put it where "
    "your model takes its system prompt. _meta.composition_id names this exact text."
)
_PROMPT_URI = re.compile(r"charter://([a-z0-9][a-z0-9-]{0,62})/agents/([^/]{1,128})/prompt")
_DIRECTIVE_URI = re.compile(r"charter://([a-z0-9][a-z0-9-]{0,62})/directives/(dir_[0-9a-z]+)")
_COMPOSITION_URI = re.compile(r"charter://([a-z0-9][a-z0-9-]{0,62})/compositions/(cmp_[0-9a-f]+)")
OPERATOR_TOOLS = ("update_directive", "rollback_directive")
READ_TOOLS = ("list_directives", "get_directive")
_encoder = msgspec.json.Encoder()


def prompt_uri(realm: str, agent: str) -> str:
    return f"charter://{realm}/agents/{agent}/prompt"


Follow = Callable[[str, str], AsyncIterator[str]]  # (realm, agent) -> composition ids
P = TypeVar("P")
R = TypeVar("R")
Handler = Callable[["ServerRequestContext[Subscriptions]", P], Awaitable[R]]


@dataclass
class Link:
    """What a transport gives each request: the API client, as the caller, and defaults."""

    charter: AsyncCharter
    follow: Follow  # every new composition id of an agent's prompt, the current one first
    realm: str | None = None
    agent: str | None = None
    # The caller's role where the transport knows it; tools/list then leaves out what the
    # role cannot call. None: list every tool, and let the API refuse (403).
    role: str | None = None

    def home(self, realm: str | None, agent: str | None) -> tuple[str, str]:
        realm, agent = realm or self.realm, agent or self.agent
        if realm and agent:
            return realm, agent
        missing = " and the ".join(n for n, v in (("realm", realm), ("agent", agent)) if not v)
        raise invalid(
            f"name the {missing}: this session has none by default, so pass the prompt's "
            "arguments realm and agent (or connect to /mcp?realm=R&agent=A)"
        )


@dataclass
class Subscriptions:
    """Each MCP session's followers of subscribed prompts, in one task group."""

    tasks: TaskGroup
    by_session: dict[int, dict[str, anyio.CancelScope]] = field(default_factory=dict)

    def start(self, session: ServerSession, uri: str, changes: AsyncIterator[str]) -> None:
        scopes = self.by_session.setdefault(id(session), {})
        if uri in scopes:
            return
        scope = anyio.CancelScope()
        scopes[uri] = scope

        async def notify() -> None:
            with scope:
                try:
                    first = True
                    async for _ in changes:
                        if not first:
                            await session.send_resource_updated(uri)
                        first = False
                except Exception:
                    pass  # the key went, or the session, or the agent: nothing more to tell
                finally:
                    scopes.pop(uri, None)
                    if not scopes:
                        self.by_session.pop(id(session), None)

        self.tasks.start_soon(notify)

    def stop(self, session: ServerSession, uri: str) -> None:
        scope = self.by_session.get(id(session), {}).get(uri)
        if scope is not None:
            scope.cancel()


def _json(value: Any) -> str:
    return _encoder.encode(value).decode()


def _text(value: Any) -> types.TextContent:
    return types.TextContent(type="text", text=_json(value))


# Tool arguments, checked strictly against the schema each tool declares (the SDK checks
# nothing): an unknown argument, a wrong type or an id off its pattern is "bad arguments", and
# nothing that goes into a URL can be long or odd enough to make the client fail on it.
_END = r"$(?!\n)"  # `$` alone also matches before a final newline
RealmArg = Annotated[
    str, Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,62}" + _END, description="default: the session's")
]
DirectiveArg = Annotated[
    str, Meta(pattern=rf"^dir_{SUFFIX}" + _END, description="the directive id (dir_…)")
]
AgentArg = Annotated[str, Meta(pattern=r"^[A-Za-z0-9._:@-]{1,128}" + _END)]
RevisionArg = Annotated[int, Meta(ge=1, description="the revision it must still have")]
StatusArg = Literal["active", "paused", "completed", "cancelled"]


class _Args(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    realm: RealmArg | UnsetType = UNSET

    def given(self, *names: str) -> dict[str, Any]:
        """The named arguments the caller gave."""
        return {n: getattr(self, n) for n in names if getattr(self, n) is not UNSET}


class ListDirectives(_Args):
    """The realm's directives (without bodies), filtered; pass next_cursor back as cursor."""

    status: StatusArg | UnsetType = UNSET
    owner_agent_id: AgentArg | UnsetType = UNSET
    level: Literal["realm", "team", "agent"] | UnsetType = UNSET
    parent_id: DirectiveArg | UnsetType = UNSET
    limit: Annotated[int, Meta(ge=1, le=500)] | UnsetType = UNSET
    cursor: Annotated[str, Meta(max_length=1024)] | UnsetType = UNSET


class GetDirective(_Args):
    """One directive, with its active title and body."""

    id: DirectiveArg


class UpdateDirective(_Args):
    """Change a directive if it still has expected_revision (compare-and-swap); a stale
    revision changes nothing and says the current one."""

    id: DirectiveArg
    expected_revision: RevisionArg
    title: str | UnsetType = UNSET
    body: str | UnsetType = UNSET
    message: Annotated[str, Meta(description="why")] | UnsetType = UNSET
    status: StatusArg | UnsetType = UNSET
    priority: Literal["critical", "high", "normal", "low"] | UnsetType = UNSET
    owner_agent_id: AgentArg | UnsetType = UNSET
    injection_mode: Literal["system_first", "system_append", "user_prepend"] | UnsetType = UNSET


class RollbackDirective(_Args):
    """Make an earlier version live again (no new version), if the directive still has
    expected_revision."""

    id: DirectiveArg
    version: Annotated[int, Meta(ge=1)]
    expected_revision: RevisionArg
    message: str | UnsetType = UNSET


_ARGUMENTS: dict[str, type[_Args]] = {
    "list_directives": ListDirectives,
    "get_directive": GetDirective,
    "update_directive": UpdateDirective,
    "rollback_directive": RollbackDirective,
}
_PATCH_FIELDS = ("title", "body", "message", "status", "priority", "owner_agent_id")


def _tools() -> list[types.Tool]:
    _, schemas = msgspec.json.schema_components(_ARGUMENTS.values())
    tools = []
    for name, kind in _ARGUMENTS.items():
        schema = dict(schemas[kind.__name__])
        description = " ".join((schema.pop("description", "")).split())
        schema.pop("title", None)
        tools.append(types.Tool(name=name, description=description, input_schema=schema))
    return tools


TOOLS = _tools()


async def _call_tool(link: Link, name: str, given: dict[str, Any]) -> Any:
    kind = _ARGUMENTS.get(name)
    if kind is None:
        raise ValueError(f"no tool {name!r}")
    args = msgspec.convert(given, type=kind, strict=True)
    realm = args.realm or link.realm
    if isinstance(args, ListDirectives):
        fields = ("status", "owner_agent_id", "level", "parent_id", "limit", "cursor")
        page = await link.charter.directives(realm=realm, **args.given(*fields))
        return msgspec.to_builtins(page)
    if isinstance(args, GetDirective):
        return msgspec.to_builtins(await link.charter.get(args.id, realm=realm))
    if isinstance(args, UpdateDirective):
        patch = m.Patch(**args.given(*_PATCH_FIELDS, "injection_mode"))
        updated = await link.charter.update(
            args.id, patch, expected_revision=args.expected_revision, realm=realm
        )
        return msgspec.to_builtins(updated)
    assert isinstance(args, RollbackDirective)
    rolled = await link.charter.rollback(
        args.id,
        args.version,
        expected_revision=args.expected_revision,
        message=args.given("message").get("message"),
        realm=realm,
    )
    return msgspec.to_builtins(rolled)


def _problem(exc: errors.CharterError) -> str:
    problem = getattr(exc, "problem", None)
    if problem is not None:
        return _json({"status": problem.status, "code": problem.code, "detail": problem.detail})
    return str(exc)


def invalid(message: str) -> MCPError:
    """Bad arguments: a missing realm or agent, an unknown prompt or resource."""
    return MCPError(INVALID_PARAMS, message)


def refusal(exc: errors.CharterError) -> MCPError:
    """The API's refusal as an MCP error (the SDK logs a traceback for any other exception).

    What the request names wrongly (400, 404, 409, 422) is invalid params; anything else
    (401, 403, 429, 5xx, no connection) an internal error. `data` says the problem's status
    and code; no directive text is in either (problem details carry none)."""
    if isinstance(exc, errors.ProblemError):
        code = INVALID_PARAMS if isinstance(exc, _NAMED_WRONG) else INTERNAL_ERROR
        data = {"status": exc.status, "code": exc.problem.code}
        return MCPError(code, f"{exc.problem.code}: {exc}", data)
    return MCPError(INTERNAL_ERROR, f"the Charter server cannot be reached: {exc}")


_NAMED_WRONG = (errors.InvalidInput, errors.NotFound, errors.Conflict)
Refused = Callable[[errors.Unauthenticated], None]


def build(
    link_of: Callable[[ServerRequestContext[Subscriptions]], Awaitable[Link]],
    refused: Refused | None = None,
) -> Server[Any]:
    """The MCP server; `link_of` gives each request its Link (the transport's part).

    Every handler answers what it cannot do as an MCP error (`invalid`, `refusal`), which the
    SDK sends without logging a traceback; `refused` hears each 401 the API answers (the
    stdio session ends on it)."""

    def answered(handler: Handler[P, R]) -> Handler[P, R]:
        async def answer(ctx: ServerRequestContext[Subscriptions], params: P) -> R:
            try:
                return await handler(ctx, params)
            except errors.CharterError as exc:
                if refused is not None and isinstance(exc, errors.Unauthenticated):
                    refused(exc)
                raise refusal(exc) from None

        return answer

    @asynccontextmanager
    async def lifespan(_: Server[Subscriptions]) -> AsyncGenerator[Subscriptions, None]:
        async with anyio.create_task_group() as tasks:
            yield Subscriptions(tasks)
            tasks.cancel_scope.cancel()

    async def list_prompts(
        ctx: ServerRequestContext[Subscriptions], _: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        arguments = [
            types.PromptArgument(name="realm", description="default: the session's realm"),
            types.PromptArgument(name="agent", description="default: the session's agent"),
        ]
        prompt = types.Prompt(name=PROMPT_NAME, description=PROMPT_DESCRIPTION, arguments=arguments)
        return types.ListPromptsResult(prompts=[prompt])

    async def get_prompt(
        ctx: ServerRequestContext[Subscriptions], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        if params.name != PROMPT_NAME:
            raise invalid(f"no prompt {params.name!r}; there is {PROMPT_NAME!r}")
        link = await link_of(ctx)
        given = params.arguments or {}
        realm, agent = link.home(given.get("realm"), given.get("agent"))
        prompt = await link.charter.prompt(agent, realm=realm)
        message = types.PromptMessage(
            role="user", content=types.TextContent(type="text", text=prompt.text)
        )
        return types.GetPromptResult(
            description=PROMPT_DESCRIPTION,
            messages=[message],
            _meta={"composition_id": prompt.composition_id},
        )

    async def list_resources(
        ctx: ServerRequestContext[Subscriptions], _: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        link = await link_of(ctx)
        if not link.realm or not link.agent:
            return types.ListResourcesResult(resources=[])
        resource = types.Resource(
            uri=prompt_uri(link.realm, link.agent),
            name=f"{link.agent}'s prompt",
            description="the composed prompt; subscribe to hear when it changes",
            mime_type="text/markdown",
        )
        return types.ListResourcesResult(resources=[resource])

    async def list_templates(
        ctx: ServerRequestContext[Subscriptions], _: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        templates = [
            types.ResourceTemplate(
                uri_template="charter://{realm}/agents/{agent}/prompt",
                name="prompt",
                description="an agent's composed prompt (subscribable)",
                mime_type="text/markdown",
            ),
            types.ResourceTemplate(
                uri_template="charter://{realm}/directives/{id}",
                name="directive",
                description="a directive, with its active title and body",
                mime_type="application/json",
            ),
            types.ResourceTemplate(
                uri_template="charter://{realm}/compositions/{cid}",
                name="composition",
                description="a past or present composition, exactly",
                mime_type="application/json",
            ),
        ]
        return types.ListResourceTemplatesResult(resource_templates=templates)

    async def read_resource(
        ctx: ServerRequestContext[Subscriptions], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        link = await link_of(ctx)
        uri = str(params.uri)
        if found := _PROMPT_URI.fullmatch(uri):
            prompt = await link.charter.prompt(found[2], realm=found[1])
            contents = types.TextResourceContents(
                uri=uri,
                mime_type="text/markdown",
                text=prompt.text,
                _meta={"composition_id": prompt.composition_id},
            )
        elif found := _DIRECTIVE_URI.fullmatch(uri):
            directive = await link.charter.get(found[2], realm=found[1])
            contents = types.TextResourceContents(
                uri=uri, mime_type="application/json", text=_json(directive)
            )
        elif found := _COMPOSITION_URI.fullmatch(uri):
            composition = await link.charter.composition(found[2], realm=found[1])
            contents = types.TextResourceContents(
                uri=uri, mime_type="application/json", text=_json(composition)
            )
        else:
            raise invalid(f"no resource {uri!r}")
        return types.ReadResourceResult(contents=[contents])

    async def subscribe(
        ctx: ServerRequestContext[Subscriptions], params: types.SubscribeRequestParams
    ) -> types.EmptyResult:
        uri = str(params.uri)
        found = _PROMPT_URI.fullmatch(uri)
        if found is None:
            raise invalid("only an agent's prompt (charter://{realm}/agents/{agent}/prompt)")
        link = await link_of(ctx)
        await link.charter.prompt(found[2], realm=found[1])  # readable by this key, or refused
        ctx.lifespan_context.start(ctx.session, uri, link.follow(found[1], found[2]))
        return types.EmptyResult()

    async def unsubscribe(
        ctx: ServerRequestContext[Subscriptions], params: types.UnsubscribeRequestParams
    ) -> types.EmptyResult:
        ctx.lifespan_context.stop(ctx.session, str(params.uri))
        return types.EmptyResult()

    async def list_tools(
        ctx: ServerRequestContext[Subscriptions], _: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        role = (await link_of(ctx)).role
        allowed = {
            None: {t.name for t in TOOLS},
            "admin": {t.name for t in TOOLS},
            "operator": {t.name for t in TOOLS},
            "reader": set(READ_TOOLS),
        }.get(role, set())
        return types.ListToolsResult(tools=[t for t in TOOLS if t.name in allowed])

    async def call_tool(
        ctx: ServerRequestContext[Subscriptions], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        link = await link_of(ctx)
        try:
            result = await _call_tool(link, params.name, dict(params.arguments or {}))
        except errors.CharterError as exc:
            if refused is not None and isinstance(exc, errors.Unauthenticated):
                refused(exc)
            failed = types.TextContent(type="text", text=_problem(exc))
            return types.CallToolResult(content=[failed], is_error=True)
        except (KeyError, TypeError, ValueError, msgspec.ValidationError) as exc:
            failed = types.TextContent(type="text", text=f"bad arguments: {exc}")
            return types.CallToolResult(content=[failed], is_error=True)
        return types.CallToolResult(content=[_text(result)], structured_content=result)

    server: Server[Any] = Server(
        NAME,
        version="1",
        instructions="Charter: the agent's directives. Use the prompt `directives` as the "
        "system prompt; subscribe to its resource to hear when it changes.",
        lifespan=lifespan,
        on_list_prompts=answered(list_prompts),
        on_get_prompt=answered(get_prompt),
        on_list_resources=answered(list_resources),
        on_list_resource_templates=answered(list_templates),
        on_read_resource=answered(read_resource),
        on_subscribe_resource=answered(subscribe),
        on_unsubscribe_resource=answered(unsubscribe),
        on_list_tools=answered(list_tools),
        on_call_tool=answered(call_tool),
    )
    # The handshake era only (2025-11-25 and before), which MCP clients speak today: without
    # `server/discover`, a client in "auto" mode falls back to `initialize`, and resource
    # subscriptions (resources/subscribe) work as MCP clients know them (ADR 0009).
    server._request_handlers.pop("server/discover", None)
    return server
