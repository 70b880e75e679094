"""One live claim per directive, however many agents race for it (§10)."""

from __future__ import annotations

import asyncio

from tests.support.api import Api

AGENTS = 32
ROUNDS = 50


async def test_32_agents_racing_for_one_directive_leave_one_winner_each_round(api: Api) -> None:
    node = await api.create()
    url = f"{api.base}/{node['id']}/claims"
    winners: list[str] = []
    for _ in range(ROUNDS):
        answers = await asyncio.gather(
            *(
                api.client.post(url, json={"agent_id": f"agent-{n}", "lease_seconds": 60})
                for n in range(AGENTS)
            )
        )
        won = [a for a in answers if a.status_code == 201]
        lost = [a for a in answers if a.status_code == 409]
        assert len(won) == 1, [a.text for a in answers if a.status_code not in (201, 409)]
        assert len(lost) == AGENTS - 1
        assert {a.json()["code"] for a in lost} == {"already-claimed"}
        claim = won[0].json()
        winners.append(claim["id"])
        finish = await api.client.post(f"{url}/{claim['id']}/finish", json={"outcome": "failed"})
        assert finish.status_code == 200, finish.text
    attempts = [e["payload"]["attempt"] for e in await api.events() if e["type"] == "directive.claimed"]
    assert attempts == list(range(1, ROUNDS + 1))
    assert len(set(winners)) == ROUNDS
