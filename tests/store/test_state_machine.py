"""The write services on real PostgreSQL, checked step by step against an in-memory model.

Hypothesis drives creates, content updates, rollbacks, deactivations, moves (including ones
that would close a cycle or break the level and depth rules) and status changes; after every
step the rows in the database must say exactly what the model says.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from msgspec import UNSET
from sqlalchemy import select

from charter.clock import utcnow
from charter.db.session import Database
from charter.db.tables import directive_versions, events
from charter.domain.tree import OPEN, Level, Status
from charter.domain.versions import Content
from charter.errors import (
    CharterError,
    CycleDetected,
    HasOpenChildren,
    InvalidHierarchy,
    InvalidTransition,
    NotFound,
    StaleRevision,
)
from charter.services import activation, writes
from charter.services.writes import Actor, Expected, NewDirective, Outcome, Patch
from charter.store import directives, realms
from tests.support.api import new_realm_id

T = TypeVar("T")

# Small, so the depth rule is actually reached within a run.
MAX_DEPTH = 4
ACTOR = Actor(key_id="state-machine")

# Few distinct values, so equal (no-op) updates and repeated content happen often.
titles = st.sampled_from(["Ship", "Hold", "Grow"])
bodies = st.sampled_from(["Do it.", "Wait.", "Ünïcode ✓"])
open_statuses = st.sampled_from(sorted(OPEN))

# (level, parent level) pairs the hierarchy rules allow under a parent.
PLACEMENTS = {
    (Level.TEAM, Level.REALM),
    (Level.TEAM, Level.TEAM),
    (Level.AGENT, Level.REALM),
    (Level.AGENT, Level.TEAM),
    (Level.AGENT, Level.AGENT),
}


@dataclass
class ModelNode:
    level: Level
    parent: str | None
    status: Status
    versions: list[Content]
    revision: int = 1
    active: int | None = 1
    owner: str | None = None

    @property
    def shown(self) -> Content:
        """The content a read shows: the active version's, or the latest when deactivated."""
        return self.versions[(self.active or len(self.versions)) - 1]


def _transition_allowed(current: Status, target: Status, reopen: bool) -> bool:
    if current in OPEN:
        return True
    return target is Status.ACTIVE and reopen


@dataclass
class Snapshot:
    """What the database holds for the realm, read in one transaction."""

    nodes: dict[str, directives.Directive]
    versions: dict[str, list[tuple[int, Content]]] = field(default_factory=dict)
    seqs: list[int] = field(default_factory=list)
    realm_revision: int = 0


class StoreMachine(RuleBasedStateMachine):
    """Bound to an event loop and a Database by the test (see `_bound`)."""

    loop: ClassVar[asyncio.AbstractEventLoop]
    db: ClassVar[Database]

    nodes = Bundle("nodes")

    def __init__(self) -> None:
        super().__init__()
        self.realm = new_realm_id()
        self.model: dict[str, ModelNode] = {}
        self.event_count = 0
        self._snapshot: Snapshot | None = None
        self._run(self._create_realm())

    # -- plumbing ---------------------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        self._snapshot = None
        return self.loop.run_until_complete(coro)

    async def _create_realm(self) -> None:
        async with self.db.transaction(self.realm) as conn:
            await realms.create(conn, self.realm, "state machine", utcnow())

    async def _create(self, new: NewDirective) -> directives.Directive:
        async with self.db.transaction(self.realm) as conn:
            return await writes.create(conn, self.realm, ACTOR, new, MAX_DEPTH)

    async def _update(self, node: str, patch: Patch, revision: int | None = None) -> Outcome:
        expected = Expected(self.model[node].revision if revision is None else revision, False)
        async with self.db.transaction(self.realm) as conn:
            return await writes.update(conn, self.realm, ACTOR, node, expected, patch, MAX_DEPTH)

    async def _rollback(self, node: str, version: int, revision: int | None = None) -> Outcome:
        expected = Expected(self.model[node].revision if revision is None else revision, False)
        async with self.db.transaction(self.realm) as conn:
            return await activation.rollback(conn, self.realm, ACTOR, node, expected, version, None)

    async def _deactivate(self, node: str, revision: int | None = None) -> Outcome:
        expected = Expected(self.model[node].revision if revision is None else revision, False)
        async with self.db.transaction(self.realm) as conn:
            return await activation.deactivate(conn, self.realm, ACTOR, node, expected)

    def _refused(self, error: type[CharterError], coro: Coroutine[Any, Any, object]) -> None:
        """The write must fail with `error`; the invariants then prove it changed nothing."""
        with pytest.raises(error):
            self._run(coro)

    def _changed(self, node: str, outcome: Outcome, events_written: int = 1) -> None:
        self.model[node].revision += 1
        self.event_count += events_written
        assert outcome.changed
        assert outcome.directive.revision == self.model[node].revision

    def _unchanged(self, node: str, outcome: Outcome) -> None:
        assert not outcome.changed
        assert outcome.directive.revision == self.model[node].revision

    def _chain(self, node: str) -> list[str]:
        """[node, parent, …, root] in the model (which never holds a cycle)."""
        chain = [node]
        while (parent := self.model[chain[-1]].parent) is not None:
            chain.append(parent)
        return chain

    def _below(self, node: str) -> dict[str, int]:
        """The node's subtree in the model: id -> depth below it (the node itself is 0)."""
        out = {node: 0}
        frontier = [node]
        while frontier:
            parent = frontier.pop()
            for child, entry in self.model.items():
                if entry.parent == parent:
                    out[child] = out[parent] + 1
                    frontier.append(child)
        return out

    # -- rules ------------------------------------------------------------------------------

    @initialize(target=nodes)
    def seed(self) -> object:
        """A realm root with a team and an agent below, so moves and cascades have material."""
        root = self.create_root("Ship", "Do it.", Status.ACTIVE)
        team = self.create_child(root, Level.TEAM, "Hold", "Wait.", Status.ACTIVE)
        agent = self.create_child(team, Level.AGENT, "Grow", "Do it.", Status.PAUSED)
        return multiple(root, team, agent)

    @rule(target=nodes, title=titles, body=bodies, status=open_statuses)
    def create_root(self, title: str, body: str, status: Status) -> str:
        new = NewDirective(level=Level.REALM, title=title, body=body, status=status)
        created = self._run(self._create(new))
        self.model[created.id] = ModelNode(Level.REALM, None, status, [Content(title, body)])
        self.event_count += 1
        assert created.revision == 1
        assert created.active_version == created.latest_version == 1
        return created.id

    @rule(
        target=nodes,
        parent=nodes,
        # Mostly levels that fit somewhere; a realm node never has a parent.
        level=st.sampled_from([Level.TEAM, Level.TEAM, Level.AGENT, Level.AGENT, Level.REALM]),
        title=titles,
        body=bodies,
        status=open_statuses,
    )
    def create_child(self, parent: str, level: Level, title: str, body: str, status: Status) -> Any:
        new = NewDirective(level, title, body, parent_id=parent, status=status)
        allowed = (level, self.model[parent].level) in PLACEMENTS
        if not allowed or len(self._chain(parent)) + 1 > MAX_DEPTH:
            self._refused(InvalidHierarchy, self._create(new))
            return multiple()
        created = self._run(self._create(new))
        self.model[created.id] = ModelNode(level, parent, status, [Content(title, body)])
        self.event_count += 1
        return created.id

    @rule(node=nodes, title=st.none() | titles, body=st.none() | bodies)
    def update_content(self, node: str, title: str | None, body: str | None) -> None:
        entry = self.model[node]
        # Leave a field out of the PATCH as often as not: UNSET keeps the current value.
        patch = Patch(title=UNSET if title is None else title, body=UNSET if body is None else body)
        proposed = Content(
            entry.shown.title if title is None else title,
            entry.shown.body if body is None else body,
        )
        outcome = self._run(self._update(node, patch))
        noop = (title is None and body is None) or (
            entry.active is not None and proposed == entry.shown
        )
        if noop:
            self._unchanged(node, outcome)
            return
        entry.versions.append(proposed)
        entry.active = len(entry.versions)
        self._changed(node, outcome)
        assert outcome.directive.active_version == entry.active

    @rule(node=nodes, owner=st.sampled_from([None, "agent-1", "agent-2"]))
    def set_owner(self, node: str, owner: str | None) -> None:
        entry = self.model[node]
        outcome = self._run(self._update(node, Patch(owner_agent_id=owner)))
        if owner == entry.owner:
            self._unchanged(node, outcome)
            return
        entry.owner = owner
        self._changed(node, outcome)

    @rule(node=nodes, version=st.integers(1, 5))
    def rollback(self, node: str, version: int) -> None:
        entry = self.model[node]
        if version > len(entry.versions):
            self._refused(NotFound, self._rollback(node, version))
            return
        outcome = self._run(self._rollback(node, version))
        if version == entry.active:
            self._unchanged(node, outcome)
            return
        entry.active = version
        self._changed(node, outcome)
        assert outcome.directive.latest_version == len(entry.versions)  # no new version

    @rule(node=nodes)
    def deactivate(self, node: str) -> None:
        entry = self.model[node]
        outcome = self._run(self._deactivate(node))
        if entry.active is None:
            self._unchanged(node, outcome)
            return
        entry.active = None
        self._changed(node, outcome)

    @rule(node=nodes, new_parent=st.one_of(nodes, nodes, st.none()))
    def move(self, node: str, new_parent: str | None) -> None:
        self._move(node, new_parent)

    @rule(node=nodes, data=st.data())
    def move_into_own_subtree(self, node: str, data: st.DataObject) -> None:
        """Under itself or a descendant: always a cycle, whatever the levels say."""
        target = data.draw(st.sampled_from(sorted(self._below(node))))
        self._refused(CycleDetected, self._update(node, Patch(parent_id=target)))

    @rule(node=nodes, data=st.data())
    def move_where_the_level_fits(self, node: str, data: st.DataObject) -> None:
        """Random moves seldom fit the level rules; these do (the depth rule may still refuse)."""
        level = self.model[node].level
        below = self._below(node)
        fits = sorted(
            other
            for other, entry in self.model.items()
            if (level, entry.level) in PLACEMENTS and other not in below
        )
        if fits:
            self._move(node, data.draw(st.sampled_from(fits)))

    def _move(self, node: str, new_parent: str | None) -> None:
        entry = self.model[node]
        patch = Patch(parent_id=new_parent)
        if new_parent == entry.parent:
            self._unchanged(node, self._run(self._update(node, patch)))
            return
        height = max(self._below(node).values()) + 1
        if new_parent is None:
            chain: list[str] = []
            allowed = entry.level is Level.REALM
        else:
            chain = self._chain(new_parent)
            if node in chain:
                self._refused(CycleDetected, self._update(node, patch))
                return
            allowed = (entry.level, self.model[new_parent].level) in PLACEMENTS
        if not allowed or len(chain) + height > MAX_DEPTH:
            self._refused(InvalidHierarchy, self._update(node, patch))
            return
        outcome = self._run(self._update(node, patch))
        entry.parent = new_parent
        self._changed(node, outcome)
        assert outcome.directive.parent_id == new_parent

    @rule(node=nodes, to=st.sampled_from(Status), reopen=st.booleans(), cascade=st.booleans())
    def set_status(self, node: str, to: Status, reopen: bool, cascade: bool) -> None:
        entry = self.model[node]
        patch = Patch(status=to, reopen=reopen, cascade=cascade)
        if to is entry.status:
            self._unchanged(node, self._run(self._update(node, patch)))
            return
        if not _transition_allowed(entry.status, to, reopen):
            self._refused(InvalidTransition, self._update(node, patch))
            return
        open_below = [
            other
            for other in self._below(node)
            if other != node and not self.model[other].status.terminal
        ]
        if to.terminal and open_below and not cascade:
            self._refused(HasOpenChildren, self._update(node, patch))
            return
        outcome = self._run(self._update(node, patch))
        entry.status = to
        cascaded = open_below if to.terminal else []
        for other in cascaded:
            self.model[other].status = to
            self.model[other].revision += 1
        self._changed(node, outcome, events_written=1 + len(cascaded))

    @rule(
        node=nodes,
        off_by=st.sampled_from([-1, 1, 7]),
        write=st.sampled_from(["update", "rollback", "deactivate"]),
    )
    def stale_write(self, node: str, off_by: int, write: str) -> None:
        stale = self.model[node].revision + off_by
        coro: Coroutine[Any, Any, Outcome]
        if write == "update":
            coro = self._update(node, Patch(body="Stale."), revision=stale)
        elif write == "rollback":
            coro = self._rollback(node, 1, revision=stale)
        else:
            coro = self._deactivate(node, revision=stale)
        self._refused(StaleRevision, coro)

    # -- invariants -------------------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot:
        if self._snapshot is None:
            self._snapshot = self._run(self._read())
        return self._snapshot

    async def _read(self) -> Snapshot:
        v = directive_versions
        async with self.db.transaction(self.realm) as conn:
            rows = await directives.all_in_realm(conn, self.realm)
            snap = Snapshot(nodes={row.id: row for row in rows})
            query = (
                select(v.c.directive_id, v.c.version, v.c.title, v.c.body)
                .where(v.c.realm_id == self.realm)
                .order_by(v.c.directive_id, v.c.version)
            )
            for row in await conn.execute(query):
                snap.versions.setdefault(row.directive_id, []).append(
                    (row.version, Content(row.title, row.body))
                )
            seqs = select(events.c.seq).where(events.c.realm_id == self.realm)
            snap.seqs = list((await conn.execute(seqs.order_by(events.c.seq))).scalars())
            snap.realm_revision = (await realms.get(conn, self.realm)).revision
        return snap

    @invariant()
    def nodes_match_the_model(self) -> None:
        found = self.snapshot.nodes
        assert set(found) == set(self.model)
        for node, entry in self.model.items():
            row = found[node]
            assert (row.level, row.parent_id) == (entry.level, entry.parent)
            assert row.status is entry.status
            assert row.revision == entry.revision
            assert row.active_version == entry.active
            assert row.latest_version == len(entry.versions)
            assert row.owner_agent_id == entry.owner
            assert Content(row.title, row.body) == entry.shown

    @invariant()
    def versions_are_contiguous_and_immutable(self) -> None:
        for node, entry in self.model.items():
            stored = self.snapshot.versions.get(node, [])
            assert [number for number, _ in stored] == list(range(1, len(entry.versions) + 1))
            assert [content for _, content in stored] == entry.versions

    @invariant()
    def realm_revision_counts_the_events(self) -> None:
        snap = self.snapshot
        assert snap.realm_revision == self.event_count
        assert snap.seqs == list(range(1, self.event_count + 1))

    @invariant()
    def no_node_is_its_own_ancestor(self) -> None:
        parents = {node: row.parent_id for node, row in self.snapshot.nodes.items()}
        for node in parents:
            current = parents[node]
            for _ in range(len(parents)):
                if current is None:
                    break
                assert current != node
                current = parents[current]
            assert current is None, f"{node} does not reach a root"


def _bound(loop: asyncio.AbstractEventLoop, db: Database) -> type[StoreMachine]:
    return type("BoundStoreMachine", (StoreMachine,), {"loop": loop, "db": db})


def test_write_services_match_the_model(postgres_urls: tuple[str, str]) -> None:
    # A sync test has no running loop: the machine runs its async steps on a loop of its own,
    # with a Database opened on that loop as the app role (row-level security applies).
    loop = asyncio.new_event_loop()
    db = Database.connect(postgres_urls[1], pool_size=2)
    try:
        run_state_machine_as_test(
            _bound(loop, db),
            settings=settings(
                max_examples=25,
                stateful_step_count=30,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        loop.run_until_complete(db.dispose())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
