"""Three `charter serve` processes behind HAProxy (the `scripts/cluster` configuration), under
concurrent CAS and read load through the load balancer: SIGKILL and SIGTERM single processes,
restart the load balancer; the history checker finds 0 anomalies. Streams held through the
load balancer move to a live process and resume without a gap.

The load's two client names ("a", "b") are two connection pools to HAProxy, so the checker's
cross-client rules (no read older than an acknowledged write) span processes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.faults.history import Outcome, Write
from tests.faults.load import Load, get_json
from tests.faults.rig import BALANCED, Balanced, Rig
from tests.support.live import Event, metrics, sse_events

pytestmark = pytest.mark.timeout(120)

OUTAGE_SECONDS = 1.5
RECOVERY_SECONDS = 2.0
MIN_OPERATIONS = 200


def _judge(rig: Rig, load: Load, fault: str, drain: float, verdict: Any, recovered: float) -> None:
    rig.report(fault, verdict, load, drain)
    shown = "\n".join(str(anomaly) for anomaly in verdict.anomalies[:20])
    assert not verdict.anomalies, f"{len(verdict.anomalies)} anomalies:\n{shown}"
    assert verdict.operations >= MIN_OPERATIONS, verdict.operations
    # 502/504 are the load balancer's word for a request whose server went away: counted
    # as unanswered (maybe committed), never as a server error of Charter's.
    errors = [
        op for op in load.operations if (op.status or 0) >= 500 and op.status not in (502, 503, 504)
    ]
    assert not errors, errors[:5]
    after = [op for op in load.operations if op.start >= recovered]
    for client in ("a", "b"):
        ok = [op for op in after if isinstance(op, Write) and op.server == client]
        assert any(w.outcome is Outcome.OK for w in ok), f"no write through {client} after recovery"


async def test_processes_killed_and_stopped_behind_the_balancer_lose_nothing(
    balanced: Balanced,
) -> None:
    rig = balanced.rig
    async with rig.loaded(seed=11) as load:
        await asyncio.sleep(0.5)
        await rig.fleet.kill("p2")  # SIGKILL
        await asyncio.sleep(OUTAGE_SECONDS)
        await rig.fleet.restart("p2")
        rig.fleet.servers["p3"].stop()  # SIGTERM: it finishes what it holds, then exits
        await asyncio.sleep(OUTAGE_SECONDS)
        await rig.fleet.restart("p3")
        recovered = time.monotonic()
        await asyncio.sleep(RECOVERY_SECONDS)
    drain = await rig.drained()
    verdict = await rig.verdict(load)
    _judge(rig, load, "balanced-kill-and-term", drain, verdict, recovered)


async def test_a_restarted_load_balancer_loses_nothing(balanced: Balanced) -> None:
    rig = balanced.rig
    async with rig.loaded(seed=12) as load:
        await asyncio.sleep(0.5)
        balanced.lb.stop()
        await asyncio.sleep(OUTAGE_SECONDS / 3)
        await balanced.lb.start()
        recovered = time.monotonic()
        await asyncio.sleep(2 * RECOVERY_SECONDS)  # enough operations after it, on 2 cores
    drain = await rig.drained()
    verdict = await rig.verdict(load)
    _judge(rig, load, "balanced-lb-restart", drain, verdict, recovered)


async def _holder(rig: Rig, kind: str) -> str:
    """The process holding the one open stream of `kind`, from each process's /metrics."""
    deadline = time.monotonic() + 5.0
    while True:
        for name in BALANCED:
            try:
                async with rig.fleet.servers[name].http() as http:
                    samples = await metrics(http)
            except httpx.TransportError:
                continue  # stopped
            if samples.get(f'charter_watchers{{kind="{kind}"}}', 0) >= 1:
                return name
        assert time.monotonic() < deadline, f"no process holds the {kind}"
        await asyncio.sleep(0.05)


async def _next(events: AsyncIterator[Event], seconds: float = 5.0) -> Event | None:
    try:
        return await asyncio.wait_for(anext(events), seconds)
    except (StopAsyncIteration, httpx.TransportError):
        return None  # the process holding it went away


async def _write(rig: Rig, number: int) -> None:
    """One text write through the balancer, as a client would make it: right after a kill, a
    pooled connection may still lead to the dead process, so a transport error or a 502-504 is
    tried again (a write that did commit is seen on the re-read, and not made twice)."""
    url = f"{rig.tree.base}/directives/{rig.tree.directives['leaf']}"
    body = f"<<resume {number}>>"
    for _ in range(20):
        try:
            read = await rig.clients["a"].get(url)
            if read.status_code in (502, 503, 504):
                await asyncio.sleep(0.2)
                continue
            assert read.status_code == 200, read.text
            node = read.json()
            if node["body"] == body:
                return  # the last attempt committed before its answer was lost
            response = await rig.clients["a"].patch(
                url, json={"body": body}, headers={"If-Match": f'"{node["revision"]}"'}
            )
        except httpx.TransportError:
            await asyncio.sleep(0.2)
            continue
        if response.status_code in (502, 503, 504):
            await asyncio.sleep(0.2)
            continue
        assert response.status_code == 200, response.text
        return
    raise AssertionError(f"no write through the balancer: {body}")


async def test_an_event_stream_resumes_on_a_live_process_by_last_event_id(
    balanced: Balanced,
) -> None:
    rig, http = balanced.rig, balanced.rig.clients["b"]
    start = int((await get_json(http, rig.tree.base))["revision"])
    seen: list[int] = []
    url = f"{rig.tree.base}/events/stream"
    headers = {"Last-Event-ID": str(start)}
    for round_ in range(2):
        async with http.stream("GET", url, headers=headers, timeout=None) as response:
            assert response.status_code == 200, await response.aread()
            events = sse_events(response.aiter_lines())
            holder = await _holder(rig, "event_stream")
            for n in range(3):
                await _write(rig, round_ * 10 + n)
                event = await _next(events)
                assert event is not None
                assert event.id is not None
                seen.append(int(event.id))
            await rig.fleet.kill(holder)  # mid-stream: the connection breaks
            await _write(rig, round_ * 10 + 5)  # while no stream is open
        await rig.fleet.restart(holder)
        headers = {"Last-Event-ID": str(seen[-1])}
    async with http.stream("GET", url, headers=headers, timeout=None) as response:
        events = sse_events(response.aiter_lines())
        end = int((await get_json(http, rig.tree.base))["revision"])
        while seen[-1] < end:
            event = await _next(events)
            assert event is not None, f"stopped at {seen[-1]} of {end}"
            assert event.id is not None
            seen.append(int(event.id))
    feed = await get_json(http, f"{rig.tree.base}/events", params={"after": start, "limit": 500})
    assert seen == [e["seq"] for e in feed["items"]], "a gap or a repeat across the moves"
    line = f"faults[balanced-event-stream]: {len(seen)} events across 2 moves, 0 gaps, 0 repeats"
    print(line)
    rig.summaries.append(line)


async def test_a_prompt_stream_resumes_on_a_live_process_from_its_etag(
    balanced: Balanced,
) -> None:
    rig, http = balanced.rig, balanced.rig.clients["b"]
    url = f"{rig.tree.base}/agents/gamma/prompt/stream"
    async with http.stream("GET", url, timeout=None) as response:
        assert response.status_code == 200
        events = sse_events(response.aiter_lines())
        first = await _next(events)
        assert first is not None
        assert first.event == "prompt"
        etag = first.id
        holder = await _holder(rig, "prompt_stream")
        await rig.fleet.kill(holder)
        await _write(rig, 1)  # the prompt changes while the client is away
    # The client reconnects (through the balancer: a live process) and compares what it
    # gets on connect with the ETag it held; the long poll from that ETag agrees.
    poll = await http.get(
        f"{rig.tree.base}/agents/gamma/prompt",
        params={"wait": 5},
        headers={"If-None-Match": f'"{etag}"'},
    )
    assert poll.status_code == 200, poll.text
    async with http.stream("GET", url, timeout=None) as response:
        events = sse_events(response.aiter_lines())
        again = await _next(events)
        assert again is not None
        assert again.id != etag
        assert again.id == poll.json()["composition_id"]
        assert "<<resume 1>>" in json.loads(again.data[0])["text"]
    await rig.fleet.restart(holder)
    line = "faults[balanced-prompt-stream]: moved once; the change made while away came first"
    print(line)
    rig.summaries.append(line)


async def test_a_long_poll_moves_to_a_live_process(balanced: Balanced) -> None:
    rig, http = balanced.rig, balanced.rig.clients["b"]
    url = f"{rig.tree.base}/agents/gamma/prompt"
    etag = (await get_json(http, url))["composition_id"]
    asking = {"If-None-Match": f'"{etag}"'}
    poll = asyncio.create_task(http.get(url, params={"wait": 30}, headers=asking, timeout=40))
    holder = await _holder(rig, "long_poll")
    await asyncio.to_thread(rig.fleet.servers[holder].stop)  # SIGTERM
    # Answered at once by the stopping process: nothing changed, so ask again.
    answer = await asyncio.wait_for(poll, 10.0)
    assert answer.status_code == 304, answer.text
    poll = asyncio.create_task(http.get(url, params={"wait": 30}, headers=asking, timeout=40))
    again = await _holder(rig, "long_poll")
    assert again != holder
    await _write(rig, 2)
    changed = await asyncio.wait_for(poll, 10.0)
    assert changed.status_code == 200, changed.text
    assert changed.json()["composition_id"] != etag
    assert "<<resume 2>>" in changed.json()["text"]
    await rig.fleet.restart(holder)
    line = "faults[balanced-long-poll]: its process stopped (304 at once), re-asked on another"
    print(line)
    rig.summaries.append(line)
