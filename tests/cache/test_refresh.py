"""Prompts recomposed from the cached ones after a text change: the very bytes a query gives,
never over a change the old entry missed, never over a newer invalidation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
from litestar import Litestar

from charter.cache.entries import Entry
from charter.cache.hub import Hub
from charter.cache.local import LocalTier
from charter.runtime import Runtime
from charter.services import writes
from charter.services.prompts import decode
from charter.services.refresh import Refresh
from charter.services.writes import Actor, Expected, Patch
from tests.support.api import Api

AGENTS = ("t", "x", "y", "p")
T = TypeVar("T")


async def _on_app(api: Api, work: Callable[[], Awaitable[T]]) -> T:
    """Run `work` on the loop the client runs the app on, as its requests are."""
    portal = api.client.blocking_portal
    assert portal is not None
    return await asyncio.wrap_future(portal.start_task_soon(work))


async def _fleet(api: Api) -> dict[str, dict[str, Any]]:
    """A root, a team owned by t, agent nodes of x and y (y's body holds what looks like a
    heading and a layer join), and p's node under a paused team (p's prompt is empty)."""
    root = await api.create(title="Root", body="root body", owner_agent_id="t")
    team = await api.child(root, title="Team", body="team body", owner_agent_id="t")
    x = await api.child(team, level="agent", title="X", body="x body", owner_agent_id="x")
    y = await api.child(
        team, level="agent", title="Y", body="y\n\n# Root\n\nroot body", owner_agent_id="y"
    )
    paused = await api.child(root, title="Paused", body="paused body", status="paused")
    await api.child(paused, level="agent", title="P", body="p body", owner_agent_id="p")
    return {"root": root, "team": team, "x": x, "y": y}


async def _unrelayed(runtime: Runtime, realm: str, node: dict[str, Any], body: str) -> None:
    async with runtime.db.transaction(realm) as conn:
        await writes.update(
            conn,
            realm,
            Actor("elsewhere"),
            node["id"],
            Expected(node["revision"], via_header=True),
            Patch(body=body),
            max_depth=16,
        )


async def _warm(api: Api, runtime: Runtime) -> None:
    async def warm() -> None:
        for agent in AGENTS:
            await runtime.prompts.current(api.realm, agent)

    await _on_app(api, warm)


async def _assert_exact(api: Api, runtime: Runtime) -> None:
    async def both() -> list[tuple[Entry, Entry]]:
        return [
            (
                await runtime.prompts.current(api.realm, agent),
                await runtime.prompts.compute(api.realm, agent),
            )
            for agent in AGENTS
        ]

    for agent, (current, queried) in zip(AGENTS, await _on_app(api, both), strict=True):
        assert current.composition_id == queried.composition_id, agent
        if current.stamp == queried.stamp:
            assert current.payload == queried.payload, agent
        else:  # a later change that did not affect the agent: the same prompt, an older cursor
            assert current.stamp < queried.stamp
            ours, theirs = decode(current), decode(queried)
            assert ours.realm_revision == current.stamp
            assert msgspec.structs.replace(ours, realm_revision=theirs.realm_revision) == theirs


async def test_a_text_change_is_spliced_into_every_cached_prompt_byte_for_byte(
    api: Api, app: Litestar
) -> None:
    runtime: Runtime = app.state.runtime
    nodes = await _fleet(api)
    await _warm(api, runtime)
    changed = await api.patch(nodes["root"], title="Root, renamed", body="new\n\nroot body")
    await _on_app(api, runtime.relay.settled)  # the recomposition runs after the answer
    for agent in AGENTS:
        # Already current, without a read since the change: recomposed, not dropped.
        entry = runtime.prompts.local.get((api.realm, agent))
        assert entry is not None, agent
        assert entry.stamp == (await api.events())[-1]["seq"]
    await _assert_exact(api, runtime)
    # A deeper layer, between two others, then the same layer again.
    await api.patch(nodes["team"], body="team body, second")
    await _on_app(api, runtime.relay.settled)
    changed = await api.patch(changed, body="root body, third")
    await _on_app(api, runtime.relay.settled)
    assert runtime.prompts.local.get((api.realm, "y")) is not None
    await _assert_exact(api, runtime)
    # The new ids resolve, as every prompt's id does.
    entry = runtime.prompts.local.get((api.realm, "x"))
    assert entry is not None
    answer = await api.client.get(f"/v1/realms/{api.realm}/compositions/{entry.composition_id}")
    assert answer.status_code == 200
    assert "root body, third" in answer.json()["text"]


async def test_an_entry_that_missed_a_change_is_queried_not_recomposed(
    api: Api, app: Litestar
) -> None:
    runtime: Runtime = app.state.runtime
    nodes = await _fleet(api)
    await _warm(api, runtime)
    stale = runtime.prompts.local.get((api.realm, "x"))
    assert stale is not None
    # x's own node changes in a transaction this process does not relay: as if another
    # process committed it and its invalidation had not arrived yet.
    await _on_app(api, lambda: _unrelayed(runtime, api.realm, nodes["x"], "x body, elsewhere"))
    runtime.prompts.local.put((api.realm, "x"), stale)  # unheard: still cached here
    await api.patch(nodes["root"], body="root body, changed here")
    await _on_app(api, runtime.relay.settled)
    entry = runtime.prompts.local.get((api.realm, "x"))
    assert entry is None or entry.composition_id != stale.composition_id
    text = (await api.client.get(f"/v1/realms/{api.realm}/agents/x/prompt")).json()["text"]
    assert "x body, elsewhere" in text
    assert "root body, changed here" in text
    await _assert_exact(api, runtime)


async def test_a_newer_invalidation_or_a_flush_refuses_the_recomposed_entry(
    api: Api, app: Litestar
) -> None:
    runtime: Runtime = app.state.runtime
    nodes = await _fleet(api)
    await _warm(api, runtime)
    olds = runtime.hub.entries(api.realm, AGENTS)
    # The change commits without the relay's fast path, which is called by hand below.
    await _on_app(api, lambda: _unrelayed(runtime, api.realm, nodes["root"], "root, later"))
    stamp = (await api.events())[-1]["seq"]
    refresh = Refresh(runtime.prompts, runtime.hub)
    runtime.hub.drop_local(api.realm, ["x"], stamp + 1)  # a newer change's invalidation
    epoch = runtime.prompts.local.epoch
    told = await _on_app(api, lambda: refresh(api.realm, stamp, olds, epoch))
    assert "x" not in told
    assert runtime.prompts.local.get((api.realm, "x")) is None
    assert {"t", "y", "p"} <= told
    # A flush since the reader began (coherence lost): nothing is stored.
    runtime.prompts.local.flush()
    assert await _on_app(api, lambda: refresh(api.realm, stamp, olds, epoch)) == set()
    assert runtime.prompts.local.get((api.realm, "y")) is None


async def test_racing_changes_and_reads_leave_every_prompt_exact(api: Api, app: Litestar) -> None:
    runtime: Runtime = app.state.runtime
    nodes = await _fleet(api)
    await _warm(api, runtime)

    async def edits(name: str, rounds: int) -> None:
        node = nodes[name]
        for i in range(rounds):
            node = await api.patch(node, body=f"{name} body {i}")

    async def reads() -> None:
        for _ in range(12):
            for agent in AGENTS:
                await api.client.get(f"/v1/realms/{api.realm}/agents/{agent}/prompt")
            await asyncio.sleep(0)

    await asyncio.gather(
        edits("root", 6), edits("team", 6), edits("x", 6), edits("y", 6), reads(), reads()
    )
    await _assert_exact(api, runtime)  # while recompositions may still run
    await _on_app(api, runtime.relay.settled)
    await _assert_exact(api, runtime)


async def test_deliveries_do_not_ring_agents_whose_entries_are_being_made() -> None:
    hub = Hub(LocalTier())
    with hub.watch_agent("r", "a") as a, hub.watch_agent("r", "b") as b:
        hub.making("r", ["a"], 5)
        hub.deliver("r", ["a", "b"], 5)  # the relay's loop, or the process's own message
        assert await b.wait(0.01)
        assert not await a.wait(0.01)
        hub.making("r", ["a"], 6)  # a later change makes a's entry too
        hub.made("r", ["a"], 5)  # the earlier one is done: a stays the later one's
        hub.deliver("r", ["a"], 6)
        assert not await a.wait(0.01)
        hub.made("r", ["a"], 6)
        hub.deliver("r", ["a"], 7)
        assert await a.wait(0.01)


async def test_each_batch_is_recorded_before_its_watchers_are_rung(api: Api, app: Litestar) -> None:
    runtime: Runtime = app.state.runtime
    nodes = await _fleet(api)
    await _warm(api, runtime)
    olds = runtime.hub.entries(api.realm, AGENTS)
    await _on_app(api, lambda: _unrelayed(runtime, api.realm, nodes["root"], "root, batched"))
    stamp = (await api.events())[-1]["seq"]
    # One agent a batch: each batch's record is under way while the one before is rung.
    refresh = Refresh(runtime.prompts, runtime.hub, batch=1)

    async def run() -> tuple[set[str], dict[str, tuple[str, str]]]:
        texts: dict[str, tuple[str, str]] = {}

        async def watch(agent: str) -> None:
            with runtime.hub.watch_agent(api.realm, agent) as watch:
                if not await watch.wait(5):
                    return
                # Rung: the entry is stored and already recorded, so its id resolves.
                entry = runtime.prompts.local.get((api.realm, agent))
                assert entry is not None, agent
                assert runtime.prompts.recorded(api.realm, entry.composition_id, agent), agent
                found = await runtime.prompts.resolve(api.realm, entry.composition_id, agent)
                texts[agent] = (decode(entry).text, found.text)

        # As the fast path does: the relay's loop, delivering the change meanwhile, leaves
        # these watchers to the refresh.
        runtime.hub.making(api.realm, olds, stamp)
        watchers = [asyncio.create_task(watch(agent)) for agent in AGENTS]
        await asyncio.sleep(0)  # every watcher registered
        try:
            told = await refresh(api.realm, stamp, olds, runtime.prompts.local.epoch)
        finally:
            runtime.hub.made(api.realm, olds, stamp)
        for agent, task in zip(AGENTS, watchers, strict=True):
            if agent not in told:
                task.cancel()
        for result in await asyncio.gather(*watchers, return_exceptions=True):
            if isinstance(result, Exception):  # a failed check, not a cancelled watcher
                raise result
        return told, texts

    told, texts = await _on_app(api, run)
    assert {"t", "x", "y"} <= told
    assert set(texts) == told
    for agent, (cached, resolved) in texts.items():
        assert cached == resolved, agent
    assert "root, batched" in texts["x"][0]
