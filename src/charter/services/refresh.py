"""Prompts after a text change, recomposed from the cached ones: no query per agent.

A new version of one node changes, in every affected agent's prompt, that node's layer and
nothing else: its title, version and revision, and its part of the text. The process that
committed the change holds the agents' previous entries, with the length of each layer's part
of the text (`Entry.spans`), so the new entry is the old text with one part replaced, the
layers with one layer replaced, and the composition id over them. What an agent's
composition needs of the database is then one statement for the whole change (the feed since
the oldest entry, and the new version's text), not one per agent.

It is exact only if the old entry was current just before the change. So an agent is
recomposed only when no event between its entry's stamp and the change lists it (read from
the outbox itself, not from what this process happened to hear), the change is the last
event of its transaction and a new active version of a node whose layer contributes text.
Every other agent is left to the ordinary read, which queries. The new entries are stamped
with the change's revision, stored in the local tier with the reader's epoch (a flush since,
or a newer invalidation, refuses them: no stale refill), recorded before any reader sees them
(composition ids resolve forever), and their watchers are rung batch by batch, the event loop
yielding in between so the streams that were told send while the next batch is made.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import msgspec

from charter.cache.entries import Entry
from charter.cache.hub import Hub
from charter.domain.composition import Composition, Layer, composition_id
from charter.domain.events import EventType
from charter.services.prompts import (
    LayerDocument,
    PromptDocument,
    Prompts,
    decode,
    layer_documents,
    segment_length,
)
from charter.store import compositions, events

BATCH = 500
# Entries older than this many realm revisions are left to the ordinary read: the feed read
# that proves them current would be long.
MAX_GAP = 1000

_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class TextChange:
    """A new active version of one node, committed at realm revision `stamp`."""

    stamp: int
    directive_id: str
    version: int
    revision: int
    title: str
    body: str


def recompose(
    realm: str, agent: str, entry: Entry, change: TextChange
) -> tuple[Entry, Composition] | None:
    """The agent's entry after `change`, from its entry before it; None if it cannot be
    spliced (the node's layer gives no text, or the entry has no spans)."""
    if entry.spans is None:
        return None
    document = decode(entry)
    layers = [_layer(doc) for doc in document.layers]
    text, spans = document.text, list(entry.spans)
    start = part = 0
    for i, layer in enumerate(layers):
        if not layer.contributes:
            continue
        if layer.directive_id == change.directive_id:
            if layer.arm is not None or "{{" in change.body:
                # A rollout of this node runs (the agent's arm decides its version: a
                # candidate keeps the candidate's text), or the new body is a template
                # (values to fill in, and in the id): only the query knows.
                return None
            heading = f"{'#' * min(layer.depth, 6)} {layer.title}\n\n"
            if part >= len(spans) or not text.startswith(heading, start):
                return None  # not the text the spans describe: leave it to the query
            new_part = f"{'#' * min(layer.depth, 6)} {change.title}\n\n{change.body}"
            text = text[:start] + new_part + text[start + spans[part] :]
            spans[part] = segment_length(layer.depth, change.title, change.body)
            layers[i] = Layer(
                directive_id=layer.directive_id,
                level=layer.level,
                depth=layer.depth,
                title=change.title,
                version=change.version,
                revision=change.revision,
            )
            break
        if part >= len(spans):
            return None
        start += spans[part] + 2  # the blank line that joins two parts
        part += 1
    else:
        if any(layer.directive_id == change.directive_id for layer in layers):
            return None  # its layer gives no text yet: a new version may change the mode
    mode = document.injection_mode
    composition = Composition(composition_id(mode, layers), mode, tuple(layers), text)
    out = PromptDocument(
        composition_id=composition.composition_id,
        realm_id=realm,
        agent_id=agent,
        injection_mode=mode,
        text=text,
        layers=layer_documents(tuple(layers)),
        realm_revision=change.stamp,
    )
    fresh = Entry(change.stamp, composition.composition_id, _encoder.encode(out), tuple(spans))
    return fresh, composition


def _layer(doc: LayerDocument) -> Layer:
    return Layer(
        directive_id=doc.directive_id,
        level=doc.level,
        depth=doc.depth,
        title=doc.title,
        version=doc.version,
        revision=doc.revision,
        arm=doc.arm,
    )


class Refresh:
    """Recompose and store the affected agents' entries after a committed change; called by
    the relay's fast path (cache/relay.py) between the invalidation and the waking."""

    def __init__(self, prompts: Prompts, hub: Hub, batch: int = BATCH) -> None:
        self.prompts = prompts
        self.hub = hub
        self.batch = batch

    async def __call__(
        self, realm: str, stamp: int, olds: Mapping[str, Entry], epoch: int
    ) -> set[str]:
        """The agents whose new entries were stored and whose watchers were rung."""
        candidates = {
            agent: entry
            for agent, entry in olds.items()
            if entry.spans is not None and stamp - MAX_GAP <= entry.stamp < stamp
        }
        if not candidates:
            return set()
        change, stale = await self._read(realm, stamp, min(e.stamp for e in candidates.values()))
        if change is None:
            return set()
        # An entry older than an earlier event that lists its agent missed that change: only
        # a query knows what it did.
        current = [(a, e) for a, e in candidates.items() if stale.get(a, 0) <= e.stamp]
        told: dict[str, Entry] = {}
        for begin in range(0, len(current), self.batch):
            made: list[tuple[str, Entry, Composition]] = []
            for agent, entry in current[begin : begin + self.batch]:
                result = recompose(realm, agent, entry, change)
                if result is not None:
                    made.append((agent, *result))
            told |= await self._store(realm, made, epoch)
            await asyncio.sleep(0)  # the streams just rung send before the next batch
        tier = self.prompts.tier
        if tier is not None:  # then for other processes' readers (refused if stale there)
            stored = list(told.items())
            for begin in range(0, len(stored), self.batch):
                await tier.put_many(realm, dict(stored[begin : begin + self.batch]))
        return set(told)

    async def _read(
        self, realm: str, stamp: int, oldest: int
    ) -> tuple[TextChange | None, dict[str, int]]:
        """The change at `stamp` if it is a text change, and for each agent the last earlier
        event (after `oldest`) that lists it."""
        async with self.prompts.db.transaction(realm) as conn:
            feed = await events.feed(conn, realm, oldest, stamp - oldest, until=stamp)
            last = feed[-1] if feed and feed[-1].seq == stamp else None
            if (
                last is None
                or last.type != EventType.VERSION_CREATED
                or last.version is None
                or last.payload.get("activated", True) is False
            ):
                return None, {}
            texts = await compositions.texts(conn, realm, [(last.directive_id, last.version)])
        title, body = texts[(last.directive_id, last.version)]
        stale: dict[str, int] = {}
        for event in feed[:-1]:
            for agent in event.affected_agents:
                stale[agent] = event.seq
        change = TextChange(stamp, last.directive_id, last.version, last.revision, title, body)
        return change, stale

    async def _store(
        self, realm: str, made: list[tuple[str, Entry, Composition]], epoch: int
    ) -> dict[str, Entry]:
        """Record a batch, store it locally (the tier refuses what a newer invalidation or a
        flush made stale) and ring the watchers of what was stored."""
        await self.prompts.record(realm, [(agent, composition) for agent, _, composition in made])
        put = self.prompts.local.put
        stored = {agent: entry for agent, entry, _ in made if put((realm, agent), entry, epoch)}
        if made:  # from here a later change rings them as usual
            self.hub.made(realm, [agent for agent, _, _ in made], made[0][1].stamp)
        self.hub.ring(realm, stored)
        return stored
