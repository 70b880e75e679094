"""Rollout test helpers: a team of agents under one directive, the arm formula written out
independently of the server's, and the rollout requests."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from tests.support.api import Api
from tests.support.checks import if_match


def expected_bucket(directive_id: str, rollout_id: str, agent_id: str) -> int:
    """DESIGN §8, spelled out: the first 4 bytes of the sha256, big-endian, mod 10 000."""
    digest = hashlib.sha256(f"{directive_id}:{rollout_id}:{agent_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 10_000


def candidates(
    directive_id: str, rollout_id: str, agents: list[str], percent: float, pinned: set[str]
) -> set[str]:
    return {
        a
        for a in agents
        if a in pinned or expected_bucket(directive_id, rollout_id, a) < round(percent * 100)
    }


@dataclass
class Team:
    """A realm root, a team directive under it (the one rolled out), and one agent node per
    agent under the team."""

    root: dict[str, Any]
    team: dict[str, Any]
    agents: list[str]


async def team_of(api: Api, count: int) -> Team:
    root = await api.create(title="Realm", body="Realm body")
    team = await api.child(root, title="Team", body="Team v1")
    agents = [f"agent-{i:03d}" for i in range(count)]
    for agent in agents:
        await api.child(team, level="agent", title=agent, body="Own", owner_agent_id=agent)
    return Team(root, await api.get(team["id"]), agents)


async def put_rollout(
    api: Api, node: dict[str, Any], expect: int = 200, **body: Any
) -> dict[str, Any]:
    response = await api.client.put(
        f"{api.base}/{node['id']}/rollout", json=body, headers=if_match(node["revision"])
    )
    assert response.status_code == expect, response.text
    result: dict[str, Any] = response.json()
    return result


async def end_rollout(
    api: Api, node: dict[str, Any], how: str, expect: int = 200
) -> dict[str, Any]:
    url = f"{api.base}/{node['id']}/rollout"
    headers = if_match(node["revision"])
    if how == "promote":
        response = await api.client.post(f"{url}/promote", headers=headers)
    else:
        response = await api.client.delete(url, headers=headers)
    assert response.status_code == expect, response.text
    result: dict[str, Any] = response.json()
    return result


async def seen_versions(api: Api, directive_id: str, agents: list[str]) -> dict[str, Any]:
    """agent -> (version, arm) of the directive's layer in the agent's prompt (cached or not)."""
    out: dict[str, Any] = {}
    for agent in agents:
        response = await api.client.get(f"/v1/realms/{api.realm}/agents/{agent}/prompt")
        assert response.status_code == 200, response.text
        layer = next(x for x in response.json()["layers"] if x["directive_id"] == directive_id)
        out[agent] = (layer["version"], layer["arm"])
    return out
