"""Composed prompts: read through the cache tiers, computed in one query on a miss."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime

import msgspec

from charter.cache.entries import Entry
from charter.cache.local import LocalTier
from charter.cache.redis_tier import RedisTier
from charter.db.session import Database
from charter.domain.composition import (
    RENDERER_VERSION,
    Composition,
    Layer,
    compose,
    render,
)
from charter.domain.tree import InjectionMode, Level
from charter.metrics import Metrics
from charter.store import compositions
from charter.store._time import utcnow


class LayerDocument(msgspec.Struct, kw_only=True):
    directive_id: str
    level: Level
    depth: int
    title: str | None
    version: int | None
    revision: int


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


def _layer_documents(layers: tuple[Layer, ...]) -> list[LayerDocument]:
    return [
        LayerDocument(
            directive_id=layer.directive_id,
            level=layer.level,
            depth=layer.depth,
            title=layer.title,
            version=layer.version,
            revision=layer.revision,
        )
        for layer in layers
    ]


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
        self._recorded: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._known_ids = known_ids

    def cached(self, realm: str, agent: str) -> Entry | None:
        """The local tier's entry, if it holds one: the answer with no I/O at all."""
        entry = self.local.get((realm, agent))
        if entry is not None:
            self.metrics.count("prompt_reads", "local")
        return entry

    async def current(self, realm: str, agent: str) -> Entry:
        key = (realm, agent)
        epoch = self.local.epoch
        entry = self.cached(realm, agent)
        if entry is not None:
            return entry
        if self.tier is not None:
            entry = await self.tier.get(realm, agent)
            if entry is not None:
                self.metrics.count("prompt_reads", "redis")
                self.local.put(key, entry, epoch)
                return entry
        self.metrics.count("prompt_reads", "database")
        entry = await self.compute(realm, agent)
        if self.before_store is not None:
            await self.before_store()
        if self.tier is not None:
            await self.tier.put(realm, agent, entry)
        self.local.put(key, entry, epoch)
        return entry

    async def compute(self, realm: str, agent: str) -> Entry:
        """Bypass the cache: one query, then the composition record if it is new."""
        async with self.db.one_statement(realm) as conn:
            snap = await compositions.snapshot(conn, realm, agent)
        composition = compose(agent, snap.nodes, snap.bodies)
        await self._record(realm, agent, composition)
        document = PromptDocument(
            composition_id=composition.composition_id,
            realm_id=realm,
            agent_id=agent,
            injection_mode=composition.injection_mode,
            text=composition.text,
            layers=_layer_documents(composition.layers),
            realm_revision=snap.realm_revision,
        )
        return Entry(snap.realm_revision, composition.composition_id, _encoder.encode(document))

    async def _record(self, realm: str, agent: str, composition: Composition) -> None:
        key = (realm, composition.composition_id)
        if key in self._recorded:
            self._recorded.move_to_end(key)
            return
        record = compositions.Record(
            id=composition.composition_id,
            agent_id=agent,
            renderer_version=RENDERER_VERSION,
            injection_mode=composition.injection_mode,
            layers=[msgspec.to_builtins(doc) for doc in _layer_documents(composition.layers)],
            created_at=utcnow(),
        )
        async with self.db.transaction(realm) as conn:
            await compositions.record(conn, realm, record)
        self._recorded[key] = None
        if len(self._recorded) > self._known_ids:
            self._recorded.popitem(last=False)

    async def resolve(self, realm: str, composition_id: str) -> CompositionDocument:
        """A recorded composition, re-rendered from its immutable versions."""
        async with self.db.transaction(realm) as conn:
            record = await compositions.get(conn, realm, composition_id)
            layers = msgspec.convert(record.layers, list[LayerDocument])
            pairs = [(lay.directive_id, lay.version) for lay in layers if lay.version is not None]
            texts = await compositions.texts(conn, realm, pairs)
        domain_layers = tuple(
            Layer(
                directive_id=lay.directive_id,
                level=lay.level,
                depth=lay.depth,
                title=texts[(lay.directive_id, lay.version)][0] if lay.version else None,
                version=lay.version,
                revision=lay.revision,
            )
            for lay in layers
        )
        bodies = {directive_id: body for (directive_id, _), (_, body) in texts.items()}
        return CompositionDocument(
            composition_id=record.id,
            realm_id=realm,
            agent_id=record.agent_id,
            renderer_version=record.renderer_version,
            injection_mode=record.injection_mode,
            text=render(domain_layers, bodies),
            layers=_layer_documents(domain_layers),
            created_at=record.created_at,
        )
