"""Template variables (DESIGN §9): profiles, realm defaults, and the undefined-variable check.

Writes here run in the caller's transaction under the realm lock, like directive writes, and
write an event whose affected agents are exactly those whose prompt text changes: that is
what invalidates their cached prompts. `check_defined` runs before every write transaction
commits (`Runtime.write`) and refuses one that leaves an affected agent's prompt with a
placeholder nothing defines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from charter.domain.composition import MAX_VALUE_BYTES, NAME
from charter.domain.events import EventType
from charter.errors import InvalidRequest, NotFound, StaleRevision, UndefinedVariable
from charter.services.prompts import compose_snapshot
from charter.services.writes import Actor, Expected
from charter.store import compositions, directives, events, realms
from charter.store import variables as store
from charter.store.events import Committed, NewEvent
from charter.store.variables import Variables

MAX_VARIABLES = 256
SHOWN_AGENTS = 20


@dataclass(frozen=True, slots=True)
class Written:
    variables: Variables
    changed: bool


def validate(variables: Mapping[str, object]) -> dict[str, str]:
    """Names as placeholders spell them; values text of at most 1 KiB (UTF-8)."""
    if len(variables) > MAX_VARIABLES:
        raise InvalidRequest(f"at most {MAX_VARIABLES} variables")
    out: dict[str, str] = {}
    for name, value in variables.items():
        if not isinstance(name, str) or NAME.fullmatch(name) is None:
            raise InvalidRequest("a variable name matches [a-z][a-z0-9_]{0,63}")
        if not isinstance(value, str):
            raise InvalidRequest(f"the value of {name!r} must be text")
        if len(value.encode("utf-8")) > MAX_VALUE_BYTES:
            raise InvalidRequest(f"the value of {name!r} is over {MAX_VALUE_BYTES} bytes")
        out[name] = value
    return out


def changed_names(before: Mapping[str, str], after: Mapping[str, str]) -> set[str]:
    return {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}


async def put_profile(
    conn: AsyncConnection,
    realm_id: str,
    actor: Actor,
    agent_id: str,
    expected: Expected,
    variables: dict[str, str],
) -> Written:
    """Replace the agent's profile (compare-and-swap on its profile revision)."""
    now = await realms.lock(conn, realm_id)
    current = await store.profile(conn, realm_id, agent_id)
    if current.revision != expected.revision:
        raise StaleRevision(current.revision, via_header=expected.via_header)
    names = changed_names(current.variables, variables)
    if not names:
        return Written(current, changed=False)
    written = await store.put_profile(conn, realm_id, agent_id, current, variables, now)
    event = NewEvent(
        type=EventType.PROFILE_UPDATED,
        directive_id="",
        revision=written.revision,
        version=None,
        actor=actor.key_id,
        occurred_at=now,
        affected_agents=[agent_id],
        payload={"agent_id": agent_id, "names": sorted(names)},
    )
    await events.append(conn, realm_id, [event])
    return Written(written, changed=True)


async def put_defaults(
    conn: AsyncConnection,
    realm_id: str,
    actor: Actor,
    expected: Expected,
    variables: dict[str, str],
) -> Written:
    """Replace the realm's defaults (compare-and-swap on their revision).

    Affected: exactly the agents whose prompt text changes, i.e. whose prompt holds a
    changed name that their profile does not define.
    """
    now = await realms.lock(conn, realm_id)
    current = await store.defaults(conn, realm_id)
    if current.revision != expected.revision:
        raise StaleRevision(current.revision, via_header=expected.via_header)
    names = changed_names(current.variables, variables)
    if not names:
        return Written(current, changed=False)
    written = await store.put_defaults(conn, realm_id, current, variables, now)
    affected = await agents_using(conn, realm_id, names)
    event = NewEvent(
        type=EventType.VARIABLES_UPDATED,
        directive_id="",
        revision=written.revision,
        version=None,
        actor=actor.key_id,
        occurred_at=now,
        affected_agents=sorted(affected),
        payload={"names": sorted(names)},
    )
    await events.append(conn, realm_id, [event])
    return Written(written, changed=True)


async def agents_using(conn: AsyncConnection, realm_id: str, names: set[str]) -> set[str]:
    """The agents whose prompt holds one of `names` with no value from their profile.

    A text match finds the nodes that may use a name, their subtrees' owners the agents who
    may see one; composing those agents' prompts makes it exact.
    """
    candidates: set[str] = set()
    for node_id in await store.nodes_using(conn, realm_id, names):
        candidates |= directives.owners(await directives.subtree(conn, realm_id, node_id))
    out: set[str] = set()
    snaps = await compositions.snapshots(conn, realm_id, sorted(candidates))
    for agent, snap in snaps.items():
        if isinstance(snap, NotFound):
            continue
        composition = compose_snapshot(realm_id, agent, snap)
        held = set(composition.values) | set(composition.undefined)
        if any(name in held and name not in snap.profile for name in names):
            out.add(agent)
    return out


async def check_defined(conn: AsyncConnection, committed: Sequence[Committed]) -> None:
    """Refuse (422 `undefined-variable`) a write after which some affected agent's prompt
    holds a placeholder that nothing defines; raised before commit, so nothing is written.

    The most common write, a text swap to a body without `{{`, cannot leave a hole (it only
    removes placeholders, and no value changes) and adds no statement here.
    """
    by_realm: dict[str, set[str]] = {}
    for change in committed:
        if change.may_leave_holes:
            by_realm.setdefault(change.realm, set()).update(change.agents)
    for realm_id, agents in by_realm.items():
        if not agents:
            continue
        holes: dict[str, list[str]] = {}
        snaps = await compositions.snapshots(conn, realm_id, sorted(agents))
        for agent, snap in snaps.items():
            if isinstance(snap, NotFound):
                continue
            if not any("{{" in body for body in snap.bodies.values()) and not any(
                node.candidate_body and "{{" in node.candidate_body for node in snap.nodes
            ):
                continue  # no template anywhere in this prompt: nothing to compose
            for name in compose_snapshot(realm_id, agent, snap).undefined:
                holes.setdefault(name, []).append(agent)
        if holes:
            variable = min(holes)
            named = sorted(holes[variable])
            raise UndefinedVariable(variable, named[:SHOWN_AGENTS], len(named))
