"""Outcomes, the rollout report and the guard, over the API; rollouts' refusals."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest
from litestar import Litestar

from tests.support.api import Api
from tests.support.checks import assert_problem, assert_unchanged, if_match, snapshot
from tests.support.rollouts import end_rollout, put_rollout, seen_versions, team_of


async def _rolling(
    api: Api, count: int, percent: float, **extra: Any
) -> tuple[dict[str, Any], list[str]]:
    team = await team_of(api, count)
    node = await api.patch(team.team, body="Team v2", activate=False)
    node = await put_rollout(api, node, version=2, percent=percent, **extra)
    return node, team.agents


async def _composition(api: Api, agent: str) -> str:
    response = await api.client.get(f"/v1/realms/{api.realm}/agents/{agent}/prompt")
    assert response.status_code == 200, response.text
    cid: str = response.json()["composition_id"]
    return cid


async def _post(
    api: Api, expect: int = 202, headers: dict[str, str] | None = None, **body: Any
) -> dict[str, Any]:
    response = await api.client.post(
        f"/v1/realms/{api.realm}/outcomes", json=body, headers=headers or {}
    )
    assert response.status_code == expect, response.text
    result: dict[str, Any] = response.json()
    return result


async def _report(api: Api, node: dict[str, Any]) -> dict[str, Any]:
    response = await api.client.get(f"{api.base}/{node['id']}/rollout")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_outcomes_count_to_the_arm_the_prompt_showed(api: Api) -> None:
    node, _ = await _rolling(api, 2, 0, agents=["agent-000"])
    cand, ctrl = await _composition(api, "agent-000"), await _composition(api, "agent-001")
    accepted = await _post(api, composition_id=cand, agent_id="agent-000", metric="ok", value=1)
    assert accepted["id"].startswith("out_")
    assert accepted["attributed"] == [
        {"rollout_id": node["rollout"]["id"], "directive_id": node["id"], "arm": "candidate"}
    ]
    for value in (0.0, 2.0, 4.0):
        await _post(api, composition_id=ctrl, agent_id="agent-001", metric="ok", value=value)
    await _post(api, composition_id=cand, agent_id="agent-000", metric="ok", value=3)
    report = await _report(api, node)
    assert report["rollout"]["id"] == node["rollout"]["id"]
    [metric] = report["metrics"]
    assert metric["metric"] == "ok"
    assert metric["candidate"] == {"n": 2, "mean": 2.0, "sd": pytest.approx(2**0.5)}
    assert metric["control"] == {"n": 3, "mean": 2.0, "sd": 2.0}
    assert metric["difference"]["estimate"] == 0
    assert metric["difference"]["low"] < 0 < metric["difference"]["high"]


async def test_an_agent_key_reports_only_for_itself(api: Api) -> None:
    await _rolling(api, 2, 50)
    key = await api.client.post(
        "/v1/keys", json={"role": "agent", "realms": [api.realm], "agent_id": "agent-000"}
    )
    assert key.status_code == 201, key.text
    headers = {"Authorization": f"Bearer {key.json()['key']}"}
    own = await _composition(api, "agent-000")
    other = await _composition(api, "agent-001")
    await _post(api, headers=headers, composition_id=own, agent_id="agent-000", metric="m", value=1)
    refused = await api.client.post(
        f"/v1/realms/{api.realm}/outcomes",
        json={"composition_id": other, "agent_id": "agent-001", "metric": "m", "value": 1},
        headers=headers,
    )
    assert_problem(refused, 403, "forbidden")
    # Another agent's composition under one's own id: never its prompt, so not found.
    await _post(api, 404, composition_id=other, agent_id="agent-000", metric="m", value=1)


async def test_an_idempotent_retry_counts_once(api: Api) -> None:
    node, _ = await _rolling(api, 1, 100)
    cid = await _composition(api, "agent-000")
    body = {"composition_id": cid, "agent_id": "agent-000", "metric": "m", "value": 1.5}
    url = f"/v1/realms/{api.realm}/outcomes"
    first = await api.client.post(url, json=body, headers={"Idempotency-Key": "o-1"})
    again = await api.client.post(url, json=body, headers={"Idempotency-Key": "o-1"})
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    reused = await api.client.post(
        url, json={**body, "value": 2.5}, headers={"Idempotency-Key": "o-1"}
    )
    assert_problem(reused, 422, "idempotency-key-reused")
    [metric] = (await _report(api, node))["metrics"]
    assert metric["candidate"]["n"] == 1


BAD_OUTCOMES: list[dict[str, Any]] = [
    {"metric": "Bad Metric"},
    {"metric": ""},
    {"value": "1"},
    {"value": None},
    # Past what the report's sums of squares hold: a 500 on GET …/rollout once stored.
    {"value": 1e200},
    {"value": -1e200},
    {"composition_id": "cmp_nothex"},
    {"agent_id": "no spaces"},
    {"extra": 1},
]


async def test_bad_outcomes_are_refused(api: Api) -> None:
    node, _ = await _rolling(api, 1, 100)
    cid = await _composition(api, "agent-000")
    for change in BAD_OUTCOMES:
        body = {"composition_id": cid, "agent_id": "agent-000", "metric": "m", "value": 1}
        response = await api.client.post(
            f"/v1/realms/{api.realm}/outcomes", json={**body, **change}
        )
        assert_problem(response, 400, "invalid-request")
    not_json = await api.client.post(
        f"/v1/realms/{api.realm}/outcomes",
        content=b"{",
        headers={"Content-Type": "application/json"},
    )
    assert_problem(not_json, 400, "invalid-request")
    assert (await _report(api, node))["metrics"] == []


async def test_the_report_holds_the_largest_values_accepted(api: Api) -> None:
    node, _ = await _rolling(api, 2, 0, agents=["agent-000"])
    cids = {a: await _composition(api, a) for a in ("agent-000", "agent-001")}
    for agent, cid in cids.items():
        for value in (1e15, -1e15, 1e15):
            await _post(api, composition_id=cid, agent_id=agent, metric="m", value=value)
    (metric,) = (await _report(api, node))["metrics"]
    assert metric["candidate"]["n"] == metric["control"]["n"] == 3


async def test_an_unknown_composition_is_404(api: Api) -> None:
    await _rolling(api, 1, 100)
    await _post(
        api, 404, composition_id="cmp_" + "0" * 64, agent_id="agent-000", metric="m", value=1
    )


async def test_rollback_waits_for_the_rollout_and_deactivation_aborts_it(api: Api) -> None:
    node, agents = await _rolling(api, 6, 50)
    response = await api.client.post(
        f"{api.base}/{node['id']}/rollback",
        json={"version": 1},
        headers=if_match(node["revision"]),
    )
    assert_problem(response, 409, "rollout-in-progress")
    seq = (await api.events())[-1]["seq"]
    response = await api.client.delete(
        f"{api.base}/{node['id']}", headers=if_match(node["revision"])
    )
    assert response.status_code == 204, response.text
    after = await api.get(node["id"])
    assert (after["rollout"], after["active_version"]) == (None, None)
    kinds = [(e["type"], e["revision"]) for e in await api.events(seq)]
    assert kinds == [
        ("directive.rollout_aborted", after["revision"]),
        ("directive.deactivated", after["revision"]),
    ]
    assert (await api.events(seq))[0]["payload"]["reason"] == "deactivated"
    seen = await seen_versions(api, node["id"], agents)
    assert all(version is None for version, _ in seen.values())


async def test_rollout_refusals_write_nothing(api: Api) -> None:
    node, _ = await _rolling(api, 2, 10)
    before = await snapshot(api, node["id"])
    url = f"{api.base}/{node['id']}/rollout"
    stale = await api.client.put(url, json={"version": 2, "percent": 20}, headers=if_match(1))
    assert_problem(stale, 412, "stale-revision")
    body_stale = await api.client.put(
        url, json={"version": 2, "percent": 20, "expected_revision": 1}
    )
    assert_problem(body_stale, 409, "stale-revision")
    missing = await api.client.put(url, json={"version": 2, "percent": 20})
    assert_problem(missing, 428, "precondition-required")
    for bad in (
        {"version": 2, "percent": 100.5},
        {"version": 2, "percent": 1.234},
        {"version": 2, "percent": "10"},
        {"version": 2},
        {
            "version": 2,
            "percent": 5,
            "guard": {
                "metric": "m",
                "higher_is_better": True,
                "min_samples": 1,
                "max_regression": 0,
            },
        },
    ):
        response = await api.client.put(url, json=bad, headers=if_match(node["revision"]))
        assert_problem(response, 400, "invalid-request")
    other = await api.client.put(
        url, json={"version": 1, "percent": 5}, headers=if_match(node["revision"])
    )
    assert_problem(other, 409, "rollout-in-progress")
    nowhere = await api.client.put(
        url, json={"version": 9, "percent": 5}, headers=if_match(node["revision"])
    )
    assert_problem(nowhere, 404, "not-found")
    await assert_unchanged(api, before)
    stale_end = await api.client.post(f"{url}/promote", headers=if_match(1))
    assert_problem(stale_end, 412, "stale-revision")
    await assert_unchanged(api, before)


async def test_no_rollout_to_end_or_report_is_404(api: Api) -> None:
    node = await api.create()
    url = f"{api.base}/{node['id']}/rollout"
    assert_problem(await api.client.get(url), 404, "not-found")
    assert_problem(await api.client.delete(url, headers=if_match(1)), 404, "not-found")
    assert_problem(await api.client.post(f"{url}/promote", headers=if_match(1)), 404, "not-found")
    active = await api.client.put(url, json={"version": 1, "percent": 5}, headers=if_match(1))
    assert_problem(active, 400, "invalid-request")


@pytest.mark.parametrize("how", ["promote", "abort"])
async def test_a_composition_recorded_during_a_rollout_stays_exact(api: Api, how: str) -> None:
    node, agents = await _rolling(api, 2, 0, agents=["agent-000"])
    during = {}
    for agent in agents:
        response = await api.client.get(f"/v1/realms/{api.realm}/agents/{agent}/prompt")
        during[agent] = response.json()
    await end_rollout(api, node, how)
    for prompt in during.values():
        response = await api.client.get(
            f"/v1/realms/{api.realm}/compositions/{prompt['composition_id']}"
        )
        assert response.status_code == 200, response.text
        resolved = response.json()
        assert resolved["text"] == prompt["text"]
        assert [(x["directive_id"], x["version"], x["arm"]) for x in resolved["layers"]] == [
            (x["directive_id"], x["version"], x["arm"]) for x in prompt["layers"]
        ]
    assert "Team v2" in during["agent-000"]["text"]
    assert "Team v1" in during["agent-001"]["text"]


# --- the guard -------------------------------------------------------------------------------

GUARD = {"metric": "quality", "higher_is_better": True, "min_samples": 10, "max_regression": 0.05}


async def _feed(api: Api, agents: list[str], node: dict[str, Any], seed: int, shift: float) -> None:
    """Outcomes for every agent, the candidate's shifted by `shift`, until both arms hold 12."""
    rng = random.Random(seed)
    seen = await seen_versions(api, node["id"], agents)
    ids = {agent: await _composition(api, agent) for agent in agents}
    counts = {"candidate": 0, "control": 0}
    while min(counts.values()) < 12:
        for agent in agents:
            arm = seen[agent][1]
            value = rng.gauss(0.8 + (shift if arm == "candidate" else 0), 0.1)
            await _post(
                api, composition_id=ids[agent], agent_id=agent, metric="quality", value=value
            )
            counts[arm] += 1


async def _rollout_of(api: Api, node: dict[str, Any]) -> Any:
    return (await api.get(node["id"]))["rollout"]


async def test_the_guard_aborts_a_worse_candidate_within_five_seconds(api: Api) -> None:
    node, agents = await _rolling(api, 10, 50, guard=GUARD)
    await _feed(api, agents, node, seed=1, shift=-0.3)
    proved = time.monotonic()
    while await _rollout_of(api, node) is not None:
        assert time.monotonic() - proved < 5, "the guard did not abort within 5 s"
        await asyncio.sleep(0.05)
    events = await api.events()
    aborted = [e for e in events if e["type"] == "directive.rollout_aborted"]
    assert len(aborted) == 1
    assert aborted[0]["actor"] == "charter:guard"
    assert aborted[0]["payload"]["reason"] == "guard"


async def test_the_guard_keeps_an_equal_candidate(api: Api, app: Litestar) -> None:
    """One live run; the false-abort rate over many is tests/domain/test_experiments.py's."""
    node, agents = await _rolling(api, 10, 50, guard=GUARD)
    guard = app.state.runtime.guard  # runs on the app's own loop: only read here
    decided = guard.decided
    await _feed(api, agents, node, seed=2, shift=0.0)
    deadline = time.monotonic() + 5
    while guard.decided == decided:  # the guard looked with enough samples, and kept it
        assert time.monotonic() < deadline, "the guard never judged the rollout"
        await asyncio.sleep(0.05)
    assert await _rollout_of(api, node) is not None
