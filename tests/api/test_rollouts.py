"""Drafts and rollouts over the API: versions each agent sees, events, exact invalidation."""

from __future__ import annotations

from typing import Any

from tests.support.api import Api
from tests.support.checks import assert_problem, if_match, versions_of
from tests.support.rollouts import (
    candidates,
    end_rollout,
    put_rollout,
    seen_versions,
    team_of,
)


async def _draft(api: Api, node: dict[str, Any], body: str) -> dict[str, Any]:
    return await api.patch(node, body=body, activate=False, message="draft")


async def test_a_draft_makes_a_version_that_nothing_serves(api: Api) -> None:
    team = await team_of(api, 2)
    before = await seen_versions(api, team.team["id"], team.agents)
    after_seq = (await api.events())[-1]["seq"]
    drafted = await _draft(api, team.team, "Team v2")
    assert drafted["changed"] is True
    assert (drafted["latest_version"], drafted["active_version"]) == (2, 1)
    assert drafted["body"] == "Team v1"  # the active text still shows
    assert drafted["revision"] == team.team["revision"] + 1
    [event] = await api.events(after_seq)
    assert event["type"] == "directive.version_created"
    assert event["payload"] == {"version": 2, "based_on": 1, "activated": False}
    assert event["version"] == 2
    assert event["affected_agents"] == []
    assert await seen_versions(api, team.team["id"], team.agents) == before
    assert [v["version"] for v in await versions_of(api, team.team["id"])] == [2, 1]
    history = (await api.client.get(f"{api.base}/{team.team['id']}/history")).json()["items"]
    assert history[0]["type"] == "directive.version_created"
    assert history[0]["payload"]["activated"] is False


async def test_a_draft_needs_text(api: Api) -> None:
    node = await api.create()
    response = await api.client.patch(
        f"{api.base}/{node['id']}", json={"activate": False}, headers=if_match(node["revision"])
    )
    assert_problem(response, 400, "invalid-request")
    assert (await api.get(node["id"]))["revision"] == node["revision"]


async def test_each_rollout_change_invalidates_exactly_the_agents_whose_version_changed(
    api: Api,
) -> None:
    team = await team_of(api, 40)
    node = await _draft(api, team.team, "Team v2")
    directive_id = node["id"]
    await seen_versions(api, directive_id, team.agents)  # every prompt cached
    cand: set[str] = set()
    rollout_id = ""

    async def step(result: dict[str, Any], now: set[str]) -> dict[str, Any]:
        nonlocal cand
        events = await api.events(seq)
        assert len(events) == 1
        assert set(events[0]["affected_agents"]) == cand ^ now
        cand = now
        seen = await seen_versions(api, directive_id, team.agents)
        for agent, (version, _) in seen.items():
            assert version == (2 if agent in now else 1), agent
        return result

    seq = (await api.events())[-1]["seq"]
    node = await put_rollout(api, node, version=2, percent=25)
    rollout_id = node["rollout"]["id"]
    assert rollout_id.startswith("rol_")
    assert node["revision"] == team.team["revision"] + 2
    expected = candidates(directive_id, rollout_id, team.agents, 25, set())
    assert 0 < len(expected) < len(team.agents)
    node = await step(node, expected)
    assert (await api.events(seq))[0]["type"] == "directive.rollout_started"

    for percent, pinned in (
        (60, set()),
        (10.5, set()),
        (10.5, {"agent-039", "agent-001"}),
        (10.5, set()),
    ):
        seq = (await api.events())[-1]["seq"]
        node = await put_rollout(api, node, version=2, percent=percent, agents=sorted(pinned))
        assert node["rollout"]["id"] == rollout_id  # fixed when the rollout started
        assert node["rollout"]["percent"] == percent
        node = await step(node, candidates(directive_id, rollout_id, team.agents, percent, pinned))
        assert (await api.events(seq))[0]["type"] == "directive.rollout_changed"

    seq = (await api.events())[-1]["seq"]
    aborted = await end_rollout(api, node, "abort")
    assert aborted["rollout"] is None
    assert aborted["active_version"] == 1
    await step(aborted, set())
    assert (await api.events(seq))[0]["payload"]["reason"] == "operator"

    seq = (await api.events())[-1]["seq"]
    node = await put_rollout(api, aborted, version=2, percent=30)
    assert node["rollout"]["id"] != rollout_id  # a new rollout, new buckets
    rollout_id = node["rollout"]["id"]
    node = await step(node, candidates(directive_id, rollout_id, team.agents, 30, set()))
    seq = (await api.events())[-1]["seq"]
    promoted = await end_rollout(api, node, "promote")
    assert (promoted["active_version"], promoted["rollout"]) == (2, None)
    assert promoted["body"] == "Team v2"
    await step(promoted, set(team.agents))
    assert (await api.events(seq))[0]["type"] == "directive.rollout_promoted"


async def test_layers_show_the_arm(api: Api) -> None:
    team = await team_of(api, 3)
    node = await _draft(api, team.team, "Team v2")
    node = await put_rollout(api, node, version=2, percent=0, agents=["agent-000"])
    seen = await seen_versions(api, node["id"], team.agents)
    assert seen["agent-000"] == (2, "candidate")
    # The other agents' text did not change, so their cached prompts were kept: their layer
    # says control once their prompt is composed again.
    assert seen["agent-001"][0] == 1
    root_layer = (await api.client.get(f"/v1/realms/{api.realm}/agents/agent-000/prompt")).json()[
        "layers"
    ][0]
    assert root_layer["arm"] is None
    text = (await api.client.get(f"/v1/realms/{api.realm}/agents/agent-000/prompt")).json()
    assert "Team v2" in text["text"]
    assert "Team v1" not in text["text"]


async def test_a_text_change_during_a_rollout_keeps_each_arm_exact(api: Api) -> None:
    # Cached prompts are warm when the text changes, so the relay's recomposition from cached
    # layers (services/refresh.py) meets candidate agents: they must keep the candidate.
    team = await team_of(api, 24)
    node = await _draft(api, team.team, "Team candidate")
    node = await put_rollout(api, node, version=2, percent=50)
    warm = await seen_versions(api, node["id"], team.agents)
    chosen = {agent for agent, (version, _) in warm.items() if version == 2}
    assert 0 < len(chosen) < len(team.agents)
    node = await api.patch(node, body="Team v3")
    assert node["active_version"] == 3
    seen = await seen_versions(api, node["id"], team.agents)
    for agent, (version, arm) in seen.items():
        assert (version, arm) == ((2, "candidate") if agent in chosen else (3, "control")), agent
    for agent in team.agents:
        prompt = await api.client.get(f"/v1/realms/{api.realm}/agents/{agent}/prompt")
        text = prompt.json()["text"]
        assert ("Team candidate" in text) is (agent in chosen), agent
        assert ("Team v3" in text) is (agent not in chosen), agent
