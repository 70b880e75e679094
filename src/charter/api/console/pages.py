"""The console's read pages: server-rendered HTML over the same stores and services as the
API's reads (realms, trees, a node with its history and diffs, agents, compositions, events).
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery
from litestar.response import Template

from charter.api import params
from charter.api.agents import agent_ids_valid
from charter.api.console import diffs
from charter.api.console.session import runtime_of, signed_in
from charter.api.console.views import EXCEPTION_HANDLERS, PAGE_LIMIT, PUBLIC, number, page, require
from charter.domain.access import ALL_REALMS, Access
from charter.domain.events import EventType
from charter.domain.work import ClaimState
from charter.errors import InvalidRequest, NotFound
from charter.runtime import Runtime
from charter.services import outcomes, prompts, reads
from charter.store import (
    claims,
    compositions,
    directives,
    events,
    keys,
    realms,
    schedules,
    versions,
)

_FEED_SHOWN = 50
_REALM = "/realms/{realm_id:str}"


async def node_context(runtime: Runtime, realm_id: str, directive_id: str) -> dict[str, Any]:
    """What the node page shows: the node, its ancestry, versions, history and who is who."""
    async with runtime.db.transaction(realm_id) as conn:
        node = await directives.get(conn, realm_id, directive_id)
        chain = await directives.ancestry(conn, realm_id, directive_id)
        listed = await versions.page(conn, realm_id, directive_id, PAGE_LIMIT, None)
        history = await events.history(conn, realm_id, directive_id, PAGE_LIMIT, None)
        names = await keys.names(conn, {v.author for v in listed} | {e.actor for e in history})
        arms = (
            None if node.rollout is None else await outcomes.report(conn, realm_id, node.rollout.id)
        )
        timed = await schedules.for_directive(conn, realm_id, directive_id, PAGE_LIMIT, None)
    return {
        "arms": arms,
        "schedules": timed,
        "realm_id": realm_id,
        "node": node,
        "ancestry": list(reversed(chain[1:])),
        "versions": listed,
        "history": history,
        "names": names,
        "title": node.title,
        "nav_realm": realm_id,
    }


async def diff_of(
    runtime: Runtime, realm_id: str, directive_id: str, old: int, new: int
) -> dict[str, Any]:
    """Two versions side by side (a version that does not exist is a 404)."""
    async with runtime.db.transaction(realm_id) as conn:
        left = await versions.get(conn, realm_id, directive_id, old)
        right = await versions.get(conn, realm_id, directive_id, new)
    rows = diffs.side_by_side(
        diffs.lines(left.title, left.body), diffs.lines(right.title, right.body)
    )
    return {"from": old, "to": new, "rows": rows}


class PageController(Controller):
    path = "/console"
    include_in_schema = False
    exception_handlers = EXCEPTION_HANDLERS

    @get("/realms", opt=PUBLIC)
    async def realm_list(self, request: Request[Any, Any, State]) -> Template:
        session = await signed_in(request)
        caller = session.caller
        only = None if caller.sees_realm(ALL_REALMS) else caller.realms
        async with runtime_of(request).db.transaction() as conn:
            found = await realms.page(conn, PAGE_LIMIT, None, only)
        return page("realms.html", session, realms=found, title="Realms")

    @get(_REALM, opt=PUBLIC)
    async def tree(self, request: Request[Any, Any, State], realm_id: FromPath[str]) -> Template:
        params.realm_id(realm_id)
        session = await signed_in(request, realm_id)
        require(session.caller, Access.READ)
        async with runtime_of(request).db.transaction(realm_id) as conn:
            realm = await realms.get(conn, realm_id)
            forest = await reads.realm_forest(conn, realm_id)
        return page(
            "tree.html",
            session,
            realm=realm,
            forest=forest,
            title=f"Realm {realm_id}",
            nav_realm=realm_id,
        )

    @get(_REALM + "/directives/{directive_id:str}", opt=PUBLIC)
    async def node(
        self,
        request: Request[Any, Any, State],
        realm_id: FromPath[str],
        directive_id: FromPath[str],
        done: FromQuery[str | None] = None,
        from_version: FromQuery[str | None] = None,
        to_version: FromQuery[str | None] = None,
    ) -> Template:
        params.realm_id(realm_id)
        params.directive_id(directive_id)
        session = await signed_in(request, realm_id)
        require(session.caller, Access.READ)
        runtime = runtime_of(request)
        context = await node_context(runtime, realm_id, directive_id)
        latest: int = context["node"].latest_version
        diff = None
        if from_version is not None or to_version is not None:
            old, new = number(from_version, "from"), number(to_version, "to")
            diff = await diff_of(runtime, realm_id, directive_id, old, new)
        elif latest > 1:  # by default, what the latest version changed
            diff = await diff_of(runtime, realm_id, directive_id, latest - 1, latest)
        return page("node.html", session, done=done, diff=diff, conflict=None, **context)

    @get(_REALM + "/agents", opt=PUBLIC)
    async def agents(self, request: Request[Any, Any, State], realm_id: FromPath[str]) -> Template:
        params.realm_id(realm_id)
        session = await signed_in(request, realm_id)
        require(session.caller, Access.READ)
        async with runtime_of(request).db.transaction(realm_id) as conn:
            realm = await realms.get(conn, realm_id)
            found = await compositions.agents(conn, realm_id, PAGE_LIMIT, None)
        return page(
            "agents.html", session, realm=realm, agents=found, title="Agents", nav_realm=realm_id
        )

    @get(_REALM + "/agents/{agent_id:str}", opt=PUBLIC)
    async def agent(
        self, request: Request[Any, Any, State], realm_id: FromPath[str], agent_id: FromPath[str]
    ) -> Template:
        params.realm_id(realm_id)
        session = await signed_in(request, realm_id)
        require(session.caller, Access.PROMPT, agent_id)
        if not agent_ids_valid(realm_id, agent_id):
            raise InvalidRequest("agent ids match [A-Za-z0-9._:@-]{1,128}")
        entry = await runtime_of(request).prompts.current(realm_id, agent_id)
        return page(
            "agent.html",
            session,
            realm_id=realm_id,
            agent_id=agent_id,
            prompt=prompts.decode(entry),
            title=f"Agent {agent_id}",
            nav_realm=realm_id,
        )

    @get(_REALM + "/compositions", opt=PUBLIC)
    async def composition(
        self,
        request: Request[Any, Any, State],
        realm_id: FromPath[str],
        composition_id: FromQuery[str | None] = None,
    ) -> Template:
        params.realm_id(realm_id)
        session = await signed_in(request, realm_id)
        require(session.caller, Access.READ)
        asked = (composition_id or "").strip()
        found, error, status = None, None, 200
        if asked and not (asked.startswith("cmp_") and len(asked) == 68):
            error, status = "Composition ids look like cmp_ followed by 64 hex digits.", 400
        elif asked:
            try:
                found = await runtime_of(request).prompts.resolve(realm_id, asked, None)
            except NotFound:
                error, status = "No composition has that id in this realm.", 404
        return page(
            "composition.html",
            session,
            status,
            realm_id=realm_id,
            found=found,
            error=error,
            asked=asked,
            title="Look up a composition",
            nav_realm=realm_id,
        )

    @get(_REALM + "/events", opt=PUBLIC)
    async def feed(self, request: Request[Any, Any, State], realm_id: FromPath[str]) -> Template:
        params.realm_id(realm_id)
        session = await signed_in(request, realm_id)
        require(session.caller, Access.READ)
        async with runtime_of(request).db.transaction(realm_id) as conn:
            realm = await realms.get(conn, realm_id)
            after = max(0, realm.revision - _FEED_SHOWN)
            shown = await events.feed(conn, realm_id, after, _FEED_SHOWN)
            names = await keys.names(conn, {e.actor for e in shown})
        return page(
            "events.html",
            session,
            realm=realm,
            events=list(reversed(shown)),
            names=names,
            types=[t.value for t in EventType],
            title="Events",
            nav_realm=realm_id,
        )

    @get(_REALM + "/claims", opt=PUBLIC)
    async def claims(
        self,
        request: Request[Any, Any, State],
        realm_id: FromPath[str],
        agent_id: FromQuery[str | None] = None,
    ) -> Template:
        params.realm_id(realm_id)
        session = await signed_in(request, realm_id)
        require(session.caller, Access.READ)
        asked = (agent_id or "").strip() or None
        if asked is not None and not agent_ids_valid(realm_id, asked):
            raise InvalidRequest("agent ids match [A-Za-z0-9._:@-]{1,128}")
        async with runtime_of(request).db.transaction(realm_id) as conn:
            realm = await realms.get(conn, realm_id)
            live = await claims.page(conn, realm_id, PAGE_LIMIT, None, asked, ClaimState.LIVE)
            titles: dict[str, str] = {}
            if live:
                titles = {n.id: n.title for n in await directives.all_in_realm(conn, realm_id)}
        by_agent: dict[str, list[Any]] = {}
        for claim in live:
            by_agent.setdefault(claim.agent_id, []).append(claim)
        return page(
            "claims.html",
            session,
            realm=realm,
            by_agent=sorted(by_agent.items()),
            titles=titles,
            asked=asked or "",
            title="Claims",
            nav_realm=realm_id,
        )
