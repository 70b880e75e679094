"""Composed prompts: read through the cache tiers, computed in one query on a miss."""

from __future__ import annotations

import contextlib
import dataclasses
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.cache.entries import Entry
from charter.cache.local import LocalTier
from charter.cache.redis_tier import RedisTier
from charter.clock import utcnow
from charter.db.session import Database
from charter.domain.composition import (
    RENDERER_VERSION,
    Composition,
    Layer,
    Values,
    compose,
    render,
)
from charter.domain.rollouts import Arm
from charter.domain.tree import InjectionMode, Level
from charter.errors import NotFound
from charter.metrics import Metrics
from charter.services.misses import Misses
from charter.store import compositions


class LayerDocument(msgspec.Struct, kw_only=True):
    directive_id: str
    level: Level
    depth: int
    title: str | None
    version: int | None
    revision: int
    # The agent's arm of a rollout of this directive: the version is that arm's (DESIGN §8).
    arm: Arm | None = None


class PromptDocument(msgspec.Struct, kw_only=True):
    """The composition as agents receive it (and as the cache holds it, encoded)."""

    composition_id: str
    realm_id: str
    agent_id: str
    injection_mode: InjectionMode
    text: str
    layers: list[LayerDocument]
    realm_revision: int


class CompositionDocument(msgspec.Struct, kw_only=True):
    """A recorded composition, resolved by id: the same text and layers, forever."""

    composition_id: str
    realm_id: str
    agent_id: str
    renderer_version: int
    injection_mode: InjectionMode
    text: str
    layers: list[LayerDocument]
    created_at: datetime


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(PromptDocument)


def layer_documents(layers: tuple[Layer, ...]) -> list[LayerDocument]:
    return [
        LayerDocument(
            directive_id=layer.directive_id,
            level=layer.level,
            depth=layer.depth,
            title=layer.title,
            version=layer.version,
            revision=layer.revision,
            arm=layer.arm,
        )
        for layer in layers
    ]


def entry_of(
    realm: str, agent: str, composition: Composition, stamp: int, bodies: Mapping[str, str]
) -> Entry:
    """The cache entry of `composition` read at realm revision `stamp` (`bodies`: its layers'
    bodies, for the spans that let a later text change be spliced in: services/refresh.py)."""
    document = PromptDocument(
        composition_id=composition.composition_id,
        realm_id=realm,
        agent_id=agent,
        injection_mode=composition.injection_mode,
        text=composition.text,
        layers=layer_documents(composition.layers),
        realm_revision=stamp,
    )
    return Entry(
        stamp, composition.composition_id, _encoder.encode(document), spans_of(composition, bodies)
    )


def spans_of(composition: Composition, bodies: Mapping[str, str]) -> tuple[int, ...] | None:
    """Each contributing layer's length in the text, if a text change can be spliced in; None
    when the text is not the active bodies as written: a candidate's text shows (a rollout),
    or a body holds template syntax (its values are filled in, and they are in the id)."""
    contributing = [layer for layer in composition.layers if layer.contributes]
    if any(layer.arm is Arm.CANDIDATE for layer in contributing):
        return None
    if any("{{" in bodies[layer.directive_id] for layer in contributing):
        return None
    return tuple(
        segment_length(layer.depth, layer.title or "", bodies[layer.directive_id])
        for layer in contributing
    )


def segment_length(depth: int, title: str, body: str) -> int:
    """The length of one layer's part of the text, as `render` writes it."""
    return min(depth, 6) + 1 + len(title) + 2 + len(body)


def compose_snapshot(realm: str, agent: str, snap: compositions.Snapshot) -> Composition:
    """The agent's composition from its snapshot, placeholders filled (DESIGN §9)."""
    values = Values(snap.profile, snap.defaults, realm)
    return compose(agent, snap.nodes, snap.bodies, values)


def decode(entry: Entry) -> PromptDocument:
    return _decoder.decode(entry.payload)


class Prompts:
    """The read path. `before_store` is a seam for tests that force the stale-refill race."""

    def __init__(
        self,
        db: Database,
        local: LocalTier,
        tier: RedisTier | None,
        known_ids: int = 100_000,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics or Metrics()
        self.db = db
        self.local = local
        self.tier = tier
        self.before_store: Callable[[], Awaitable[None]] | None = None
        # (realm, composition id, agent) triples this process knows to be recorded.
        self._recorded: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self._known_ids = known_ids
        # Concurrent misses are computed and stored together (see services/misses.py).
        self._misses = Misses(self._fill)

    def cached(self, realm: str, agent: str) -> Entry | None:
        """The local tier's entry, if it holds one: the answer with no I/O at all."""
        entry = self.local.get((realm, agent))
        if entry is not None:
            self.metrics.local_hit()
        return entry

    async def current(self, realm: str, agent: str) -> Entry:
        key = (realm, agent)
        epoch = self.local.epoch
        entry = self.cached(realm, agent)
        if entry is not None:
            return entry
        self.metrics.lookup("local", "miss" if self.local.enabled else "bypassed")
        entry = await self._misses.compute(realm, agent)
        self.local.put(key, entry, epoch)
        return entry

    async def _fill(self, realm: str, agents: Sequence[str]) -> dict[str, Entry | Exception]:
        """A batch of local misses: Redis first (one MGET), then the rest computed together
        and offered to Redis in one pipeline (which refuses any entry older than an
        invalidation it holds)."""
        out: dict[str, Entry | Exception] = {}
        since = self.tier.failures if self.tier is not None else 0
        if self.tier is not None:
            if self.tier.readable:
                out.update(await self.tier.get_many(realm, agents))
                self.metrics.lookup("redis", "hit", len(out))
                self.metrics.lookup("redis", "miss", len(agents) - len(out))
            else:
                self.metrics.lookup("redis", "bypassed", len(agents))
        self.metrics.read("redis", len(out))
        missing = [agent for agent in agents if agent not in out]
        if not missing:
            return out
        self.metrics.read("database", len(missing))
        computed = await self.compute_many(realm, missing)
        if self.before_store is not None:
            await self.before_store()
        if self.tier is not None:
            await self.tier.put_many(
                realm, {agent: e for agent, e in computed.items() if isinstance(e, Entry)}, since
            )
        return out | computed

    async def compute(self, realm: str, agent: str) -> Entry:
        """Bypass the cache: one query, then the composition record if it is new."""
        async with self.db.one_statement(realm) as conn:
            snap = await compositions.snapshot(conn, realm, agent)
        composition = compose_snapshot(realm, agent, snap)
        await self.record(realm, [(agent, composition)])
        return entry_of(realm, agent, composition, snap.realm_revision, snap.bodies)

    async def compute_many(self, realm: str, agents: Sequence[str]) -> dict[str, Entry | Exception]:
        """`compute` for several agents: one query, one insert of the new records. An agent
        that owns nothing here gets its NotFound."""
        if len(agents) == 1:  # the one-agent query is the cheaper
            try:
                return {agents[0]: await self.compute(realm, agents[0])}
            except NotFound as exc:
                return {agents[0]: exc}
        async with self.db.one_statement(realm) as conn:
            snaps = await compositions.snapshots(conn, realm, agents)
        out: dict[str, Entry | Exception] = {}
        made: list[tuple[str, Composition]] = []
        for agent, snap in snaps.items():
            if isinstance(snap, NotFound):
                out[agent] = snap
                continue
            composition = compose_snapshot(realm, agent, snap)
            made.append((agent, composition))
            out[agent] = entry_of(realm, agent, composition, snap.realm_revision, snap.bodies)
        await self.record(realm, made)
        return out

    async def record(self, realm: str, made: Sequence[tuple[str, Composition]]) -> None:
        """Record the compositions, and the agents they belong to, not recorded yet, in one
        transaction."""
        new: dict[tuple[str, str, str], compositions.Record] = {}
        for agent, composition in made:
            key = (realm, composition.composition_id, agent)
            if key in self._recorded:
                self._recorded.move_to_end(key)
            elif key not in new:
                new[key] = compositions.Record(
                    id=composition.composition_id,
                    agent_id=agent,
                    renderer_version=RENDERER_VERSION,
                    injection_mode=composition.injection_mode,
                    layers=[msgspec.to_builtins(d) for d in layer_documents(composition.layers)],
                    created_at=utcnow(),
                    variables=composition.values if composition.values else None,
                )
        if not new:
            return
        async with self.db.transaction(realm) as conn:
            await compositions.record_many(conn, realm, list(new.values()))
        for key in new:
            self._recorded[key] = None
        while len(self._recorded) > self._known_ids:
            self._recorded.popitem(last=False)

    def recorded(self, realm: str, composition_id: str, agent: str) -> bool:
        """Whether this process recorded the agent's composition (or saw it recorded)."""
        return (realm, composition_id, agent) in self._recorded

    async def resolve(
        self, realm: str, composition_id: str, agent: str | None = None
    ) -> CompositionDocument:
        """A recorded composition, re-rendered from its immutable versions.

        With `agent` (an agent key's own), only a composition that is or was that agent's
        prompt; any other is NotFound, exactly as an id never recorded, so an agent cannot
        learn what other agents' prompts exist.
        """
        if agent is not None and not await self._belongs(realm, composition_id, agent):
            raise NotFound(f"composition {composition_id!r} not found")

        async def read(
            conn: AsyncConnection,
        ) -> tuple[compositions.Record, list[LayerDocument], compositions.Texts]:
            record = await compositions.get(conn, realm, composition_id)
            layers = msgspec.convert(record.layers, list[LayerDocument])
            pairs = [(lay.directive_id, lay.version) for lay in layers if lay.version is not None]
            return record, layers, await compositions.texts(conn, realm, pairs)

        # A recorded composition and the versions it names never change, and the versions
        # committed before it: wherever the record is, they are too (ADR 0013).
        record, layers, texts = await self.db.immutable(realm, read)
        domain_layers = tuple(
            Layer(
                directive_id=lay.directive_id,
                level=lay.level,
                depth=lay.depth,
                title=texts[(lay.directive_id, lay.version)][0] if lay.version else None,
                version=lay.version,
                revision=lay.revision,
                arm=lay.arm,
            )
            for lay in layers
        )
        bodies = {directive_id: body for (directive_id, _), (_, body) in texts.items()}
        return CompositionDocument(
            composition_id=record.id,
            realm_id=realm,
            agent_id=agent or record.agent_id,
            renderer_version=record.renderer_version,
            injection_mode=record.injection_mode,
            text=render(domain_layers, bodies, record.variables or {}),
            layers=layer_documents(domain_layers),
            created_at=record.created_at,
        )

    async def _belongs(self, realm: str, composition_id: str, agent: str) -> bool:

        async def read(conn: AsyncConnection) -> bool:
            if not await compositions.belongs(conn, realm, composition_id, agent):
                raise NotFound(composition_id)  # not on this replica: perhaps not yet
            return True

        # The pair, once recorded, stays: present on a replica is an answer, absent is not.
        with contextlib.suppress(NotFound):
            return await self.db.immutable(realm, read)
        # An entry cached before its agent was recorded (by a server older than migration
        # 0009) is still the agent's prompt: its current composition says so, and records it.
        try:
            current = await self.current(realm, agent)
        except NotFound:
            return False
        if current.composition_id != composition_id:
            return False
        await self._record_pair(realm, composition_id, agent)
        return True

    async def _record_pair(self, realm: str, composition_id: str, agent: str) -> None:
        async with self.db.transaction(realm) as conn:
            record = await compositions.get(conn, realm, composition_id)
            pair = dataclasses.replace(record, agent_id=agent)
            await compositions.record_many(conn, realm, [pair])
        self._recorded[(realm, composition_id, agent)] = None
