"""Directive routes: CRUD with compare-and-swap, versions, diffs, rollback, trees, history."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Annotated, Any, TypeVar

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.params import FromQuery, JSONBody, QueryParameter
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.api import params, render, wire
from charter.api.auth import ACCESS
from charter.api.deps import ActorDep, RuntimeDep
from charter.api.idempotent import write_once
from charter.domain.access import Access
from charter.domain.tree import Level, Priority, Status
from charter.services import activation, reads, writes
from charter.services.writes import NewDirective, Patch
from charter.store import directives, events, keys, realms, versions
from charter.store.directives import Directive, ListFilters

T = TypeVar("T")


def fill(kind: type[T], data: object) -> T:
    """A service's input from the request body: every field of `kind`, by name, so a field
    the wire type lacks fails every request at once instead of being dropped."""
    assert is_dataclass(kind)
    return kind(**{f.name: getattr(data, f.name) for f in fields(kind)})


def _etag(d: Directive) -> dict[str, str]:
    return {"ETag": f'"{d.revision}"'}


class DirectiveController(Controller):
    path = "/v1/realms/{realm_id:str}/directives"
    tags = ["directives"]  # noqa: RUF012

    @post(
        "/",
        status_code=201,
        summary="Create a directive (version 1)",
        operation_id="createDirective",
        description=(
            "Creates a directive and its version 1. Answers the directive, its ETag (the revision)"
            " and its Location."
        ),
        opt={ACCESS: Access.WRITE},
    )
    async def create(
        self,
        runtime: RuntimeDep,
        actor: ActorDep,
        realm_id: params.RealmPath,
        data: JSONBody[wire.DirectiveCreate],
        request: Request[Any, Any, Any],
    ) -> Response[wire.DirectiveOut]:
        data = params.strict_body(await request.json(), wire.DirectiveCreate)
        params.realm_id(realm_id)
        new = fill(NewDirective, data)

        async def run(conn: AsyncConnection) -> Response[wire.DirectiveOut]:
            created = await writes.create(conn, realm_id, actor, new, runtime.settings.max_depth)
            location = f"/v1/realms/{realm_id}/directives/{created.id}"
            headers = {**_etag(created), "Location": location}
            return Response(render.directive(created), status_code=201, headers=headers)

        return await write_once(runtime, request, realm_id, run)

    @get(
        "/",
        summary="List directives (keyset pagination)",
        operation_id="listDirectives",
        description=(
            "Directives without their bodies, filtered, a page at a time (follow next_cursor)."
        ),
        opt={ACCESS: Access.READ},
    )
    async def list_directives(
        self,
        runtime: RuntimeDep,
        realm_id: params.RealmPath,
        level: FromQuery[Level | None] = None,
        status: FromQuery[Status | None] = None,
        priority: FromQuery[Priority | None] = None,
        parent_id: params.DirectiveQuery = None,
        owner_agent_id: Annotated[str | None, QueryParameter(pattern=wire.AGENT_ID_PATTERN)] = None,
        key: Annotated[str | None, QueryParameter(pattern=wire.KEY_PATTERN)] = None,
        roots: FromQuery[bool] = False,
        limit: params.Limit = None,
        cursor: FromQuery[str | None] = None,
    ) -> wire.DirectivePage:
        params.realm_id(realm_id)
        if parent_id is not None:
            params.directive_id(parent_id)
        filters = ListFilters(level, status, parent_id, owner_agent_id, priority, key, roots)
        size = params.limit(limit)
        async with runtime.db.transaction(realm_id) as conn:
            await realms.get(conn, realm_id)
            page = await directives.page(
                conn, realm_id, filters, size + 1, params.decode_cursor(cursor)
            )
        items = page[:size]
        next_cursor = params.encode_cursor(items[-1].id) if len(page) > size else None
        return wire.DirectivePage([render.summary(d) for d in items], next_cursor)

    @get(
        "/{directive_id:str}",
        summary="Show a directive with its active text",
        operation_id="getDirective",
        description=(
            "A directive with its active version's title and body; the ETag is its revision, for "
            "If-Match."
        ),
        opt={ACCESS: Access.READ},
    )
    async def show(
        self, runtime: RuntimeDep, realm_id: params.RealmPath, directive_id: params.DirectivePath
    ) -> Response[wire.DirectiveOut]:
        _ids(realm_id, directive_id)
        async with runtime.db.transaction(realm_id) as conn:
            found = await directives.get(conn, realm_id, directive_id)
        return Response(render.directive(found), headers=_etag(found))

    @patch(
        "/{directive_id:str}",
        summary="Compare-and-swap update",
        operation_id="updateDirective",
        description=(
            "Changes a directive if its revision is still the expected one (If-Match, or "
            "expected_revision in the body). A new title or body makes a new version."
        ),
        opt={ACCESS: Access.WRITE},
    )
    async def update(
        self,
        runtime: RuntimeDep,
        actor: ActorDep,
        realm_id: params.RealmPath,
        directive_id: params.DirectivePath,
        data: JSONBody[wire.DirectivePatch],
        request: Request[Any, Any, Any],
        if_match: params.IfMatch = None,
    ) -> Response[wire.DirectiveOut]:
        _ids(realm_id, directive_id)
        data = params.strict_body(await request.json(), wire.DirectivePatch)
        expected = params.expected_revision(if_match, data.expected_revision)
        change = fill(Patch, data)

        async def run(conn: AsyncConnection) -> Response[wire.DirectiveOut]:
            outcome = await writes.update(
                conn, realm_id, actor, directive_id, expected, change, runtime.settings.max_depth
            )
            body = render.directive(outcome.directive, changed=outcome.changed)
            return Response(body, headers=_etag(outcome.directive))

        return await write_once(runtime, request, realm_id, run, whole=True)

    @delete(
        "/{directive_id:str}",
        status_code=204,
        summary="Deactivate (compare-and-swap)",
        operation_id="deactivateDirective",
        description=(
            "Deactivates a directive, with the expected revision in If-Match or in an optional "
            "body."
        ),
        opt={ACCESS: Access.WRITE},
    )
    async def deactivate(
        self,
        runtime: RuntimeDep,
        actor: ActorDep,
        realm_id: params.RealmPath,
        directive_id: params.DirectivePath,
        request: Request[Any, Any, Any],
        if_match: params.IfMatch = None,
    ) -> Response[None]:
        _ids(realm_id, directive_id)
        data = params.decode_body(await request.body(), wire.DeactivateIn)
        expected = params.expected_revision(if_match, data.expected_revision)

        async def run(conn: AsyncConnection) -> Response[None]:
            outcome = await activation.deactivate(
                conn, realm_id, actor, directive_id, expected, data.message
            )
            return Response(None, status_code=204, headers=_etag(outcome.directive))

        return await write_once(runtime, request, realm_id, run)

    @post(
        "/{directive_id:str}/rollback",
        status_code=200,
        summary="Move the active version",
        operation_id="rollbackDirective",
        description="Makes an earlier (or later) version the active one, compare-and-swap.",
        opt={ACCESS: Access.WRITE},
    )
    async def rollback(
        self,
        runtime: RuntimeDep,
        actor: ActorDep,
        realm_id: params.RealmPath,
        directive_id: params.DirectivePath,
        data: JSONBody[wire.RollbackIn],
        request: Request[Any, Any, Any],
        if_match: params.IfMatch = None,
    ) -> Response[wire.DirectiveOut]:
        _ids(realm_id, directive_id)
        data = params.strict_body(await request.json(), wire.RollbackIn)
        expected = params.expected_revision(if_match, data.expected_revision)
        version, message = data.version, data.message

        async def run(conn: AsyncConnection) -> Response[wire.DirectiveOut]:
            outcome = await activation.rollback(
                conn, realm_id, actor, directive_id, expected, version, message
            )
            body = render.directive(outcome.directive, changed=outcome.changed)
            return Response(body, headers=_etag(outcome.directive))

        return await write_once(runtime, request, realm_id, run)

    @get(
        "/{directive_id:str}/versions",
        summary="Version history, newest first",
        operation_id="listVersions",
        description=(
            "The directive's versions without their bodies, newest first, a page at a time."
        ),
        opt={ACCESS: Access.READ},
    )
    async def list_versions(
        self,
        runtime: RuntimeDep,
        realm_id: params.RealmPath,
        directive_id: params.DirectivePath,
        limit: params.Limit = None,
        cursor: FromQuery[str | None] = None,
    ) -> wire.VersionPage:
        _ids(realm_id, directive_id)
        size = params.limit(limit)
        before = params.decode_int_cursor(cursor)

        async def read(
            conn: AsyncConnection,
        ) -> tuple[list[versions.Version], dict[str, str | None]]:
            await directives.revision_or_404(conn, realm_id, directive_id)
            page = await versions.page(conn, realm_id, directive_id, size + 1, before)
            return page, await keys.names(conn, {v.author for v in page[:size]})

        # Versions are only ever added, each by a write that raises the realm revision: a
        # replica that has replayed the primary's current revision has them all (ADR 0013).
        page, names = await runtime.db.replayed(realm_id, read)
        items = page[:size]
        next_cursor = params.encode_cursor(items[-1].version) if len(page) > size else None
        summaries = [render.version_summary(v, names.get(v.author)) for v in items]
        return wire.VersionPage(summaries, next_cursor)

    @get(
        "/{directive_id:str}/versions/{number:str}",
        summary="One version, in full",
        operation_id="getVersion",
        description="One version of a directive, body included.",
        opt={ACCESS: Access.READ},
    )
    async def show_version(
        self,
        runtime: RuntimeDep,
        realm_id: params.RealmPath,
        directive_id: params.DirectivePath,
        number: params.VersionPath,
    ) -> wire.VersionOut:
        _ids(realm_id, directive_id)
        version = params.number(number, "the version number")

        async def read(conn: AsyncConnection) -> tuple[versions.Version, dict[str, str | None]]:
            found = await versions.get(conn, realm_id, directive_id, version)
            return found, await keys.names(conn, {found.author})

        # A version and its author's key name never change: a replica may answer (ADR 0013).
        found, names = await runtime.db.immutable(realm_id, read)
        return render.version(found, names.get(found.author))

    @get(
        "/{directive_id:str}/diff",
        summary="Unified diff of two versions",
        operation_id="diffVersions",
        description="A unified diff between the bodies of two versions of a directive.",
        opt={ACCESS: Access.READ},
    )
    async def diff(
        self,
        runtime: RuntimeDep,
        realm_id: params.RealmPath,
        directive_id: params.DirectivePath,
        from_version: Annotated[str, params.number_query(1, None, name="from")],
        to_version: Annotated[str, params.number_query(1, None, name="to")],
    ) -> wire.DiffOut:
        _ids(realm_id, directive_id)
        old = params.number(from_version, "from", 1)
        new = params.number(to_version, "to", 1)
        result = await runtime.db.immutable(
            realm_id, lambda conn: reads.diff(conn, realm_id, directive_id, old, new)
        )
        return wire.DiffOut(from_=result.from_version, to=result.to_version, diff=result.diff)

    @get(
        "/{directive_id:str}/history",
        summary="Timeline: who changed what, when, and why",
        operation_id="getHistory",
        description=(
            "The directive's changes, newest first: what changed, who changed it (key id and "
            "name), when, and the message."
        ),
        opt={ACCESS: Access.READ},
    )
    async def history(
        self,
        runtime: RuntimeDep,
        realm_id: params.RealmPath,
        directive_id: params.DirectivePath,
        limit: params.Limit = None,
        cursor: FromQuery[str | None] = None,
    ) -> wire.HistoryPage:
        _ids(realm_id, directive_id)
        size = params.limit(limit)
        before = params.decode_int_cursor(cursor)

        async def read(conn: AsyncConnection) -> tuple[list[events.Event], dict[str, str | None]]:
            await directives.revision_or_404(conn, realm_id, directive_id)
            page = await events.history(conn, realm_id, directive_id, size + 1, before)
            return page, await keys.names(conn, {e.actor for e in page[:size]})

        # Events are only ever added, each at the realm revision it raised (its seq): a
        # replica that has replayed the revision the page depends on has every one of them
        # (ADR 0013). The first page depends on the primary's current revision; a later one
        # on its cursor, since every event before it committed before it.
        page, names = await runtime.db.replayed(realm_id, read, depends_on=before)
        items = page[:size]
        next_cursor = params.encode_cursor(items[-1].seq) if len(page) > size else None
        entries = [render.history_entry(e, names.get(e.actor)) for e in items]
        return wire.HistoryPage(entries, next_cursor)

    @get(
        "/{directive_id:str}/ancestry",
        summary="The chain from the node up to its root",
        operation_id="getAncestry",
        description="The directive and its ancestors up to the root, nearest first.",
        opt={ACCESS: Access.READ},
    )
    async def ancestry(
        self, runtime: RuntimeDep, realm_id: params.RealmPath, directive_id: params.DirectivePath
    ) -> wire.AncestryOut:
        _ids(realm_id, directive_id)
        async with runtime.db.transaction(realm_id) as conn:
            chain = await directives.ancestry(conn, realm_id, directive_id)
        return wire.AncestryOut([render.ancestor(d) for d in chain], depth=len(chain))

    @get(
        "/{directive_id:str}/tree",
        summary="The node's subtree, nested",
        operation_id="getSubtree",
        description="The directive and everything under it, nested, without bodies.",
        opt={ACCESS: Access.READ},
    )
    async def subtree(
        self, runtime: RuntimeDep, realm_id: params.RealmPath, directive_id: params.DirectivePath
    ) -> wire.TreeNodeOut:
        _ids(realm_id, directive_id)
        async with runtime.db.transaction(realm_id) as conn:
            return render.tree_node(await reads.subtree(conn, realm_id, directive_id))


def _ids(realm_id: params.RealmPath, directive_id: params.DirectivePath) -> None:
    params.realm_id(realm_id)
    params.directive_id(directive_id)
