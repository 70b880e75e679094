"""Cache misses computed in batches: the same entries, fewer statements, no stale joins."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from charter.cache.entries import Entry
from charter.cache.local import LocalTier
from charter.db.session import Database
from charter.errors import NotFound
from charter.services.misses import Misses
from charter.services.prompts import Prompts
from tests.support.api import Api


class _Recorder:
    """A compute function that records its batches and can be held mid-batch."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.started = asyncio.Event()
        self.hold = asyncio.Event()
        self.hold.set()

    async def __call__(self, realm: str, agents: Sequence[str]) -> dict[str, Entry | Exception]:
        self.batches.append(list(agents))
        self.started.set()
        await self.hold.wait()
        return {
            agent: NotFound(agent)
            if agent.startswith("none")
            else Entry(len(self.batches), "c", b"")
            for agent in agents
        }


async def test_concurrent_misses_make_one_batch() -> None:
    compute = _Recorder()
    misses = Misses(compute)
    entries = await asyncio.gather(*(misses.compute("r", f"a{i}") for i in range(5)))
    assert compute.batches == [["a0", "a1", "a2", "a3", "a4"]]
    assert {e.stamp for e in entries} == {1}


async def test_a_miss_never_joins_a_batch_already_started() -> None:
    compute = _Recorder()
    misses = Misses(compute)
    compute.hold.clear()
    first = asyncio.create_task(misses.compute("r", "a"))
    await compute.started.wait()
    # "a" misses again while its batch is being computed: that batch may predate a change.
    second = asyncio.create_task(misses.compute("r", "a"))
    await asyncio.sleep(0)
    compute.hold.set()
    assert (await first).stamp == 1
    assert (await second).stamp == 2
    assert compute.batches == [["a"], ["a"]]


async def test_each_agent_gets_its_own_outcome_and_batches_are_bounded() -> None:
    compute = _Recorder()
    misses = Misses(compute, batch=2)
    results = await asyncio.gather(
        misses.compute("r", "a"),
        misses.compute("r", "none"),
        misses.compute("r", "b"),
        return_exceptions=True,
    )
    assert isinstance(results[0], Entry)
    assert isinstance(results[1], NotFound)
    assert isinstance(results[2], Entry)
    assert compute.batches == [["a", "none"], ["b"]]


async def test_a_failed_batch_fails_its_readers_and_the_next_batch_runs() -> None:
    calls = 0

    async def flaky(realm: str, agents: Sequence[str]) -> dict[str, Entry | Exception]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("database gone")
        return {agent: Entry(1, "c", b"") for agent in agents}

    misses = Misses(flaky)
    with pytest.raises(OSError, match="database gone"):
        await misses.compute("r", "a")
    assert (await misses.compute("r", "a")).stamp == 1


async def test_compute_many_equals_compute_for_each_agent(db: Database, api: Api) -> None:
    root = await api.create(title="Root", body="root body")
    team = await api.child(root, title="Team", body="team body", owner_agent_id="t")
    for agent in ("x", "y", "z"):
        await api.child(team, level="agent", title=agent, body=agent, owner_agent_id=agent)
    prompts = Prompts(db, LocalTier(), None)
    agents = ["t", "x", "y", "z", "nobody"]
    many = await prompts.compute_many(api.realm, agents)
    assert isinstance(many["nobody"], NotFound)
    for agent in agents[:-1]:
        assert many[agent] == await prompts.compute(api.realm, agent)
