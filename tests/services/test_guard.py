"""The guard's sweep: a proven regression whose outcomes poked no process is still aborted."""

from __future__ import annotations

import random
from typing import Any

from charter.clock import utcnow
from charter.db.session import Database
from charter.domain.rollouts import GUARD_ACTOR
from charter.services.guard import RolloutGuard
from charter.store import rollouts
from charter.store.rollouts import NewOutcome
from tests.support.api import Api
from tests.support.rollouts import put_rollout, team_of

GUARD = {"metric": "quality", "higher_is_better": True, "min_samples": 10, "max_regression": 0}


async def _rolling(api: Api) -> dict[str, Any]:
    team = await team_of(api, 1)
    node = await api.patch(team.team, body="Team v2", activate=False)
    return await put_rollout(api, node, version=2, percent=50, guard=GUARD)


async def _outcomes(db: Database, realm: str, node: dict[str, Any], shift: float) -> None:
    """Outcomes written straight to the table: no request, so no process was poked."""
    rng = random.Random(5)
    rows = [
        NewOutcome(
            rollout_id=node["rollout"]["id"],
            id=f"out_{arm}{i:04d}",
            directive_id=node["id"],
            arm=arm,
            metric="quality",
            value=rng.gauss(0.8 + (shift if arm == "candidate" else 0), 0.05),
            agent_id="agent-000",
            composition_id="cmp_" + "0" * 64,
            created_at=utcnow(),
        )
        for arm in ("candidate", "control")
        for i in range(20)
    ]
    async with db.transaction(realm) as conn:
        await rollouts.add_outcomes(conn, realm, rows)


async def test_the_sweep_aborts_a_proven_regression_and_keeps_the_rest(
    api: Api, db: Database
) -> None:
    worse, equal = await _rolling(api), await _rolling(api)
    await _outcomes(db, api.realm, worse, -0.3)
    await _outcomes(db, api.realm, equal, 0.0)
    guard = RolloutGuard(db, db.transaction)
    assert await guard.check(api.realm, equal["id"]) is False
    await guard.sweep()
    assert guard.aborted == 1
    assert (await api.get(worse["id"]))["rollout"] is None
    assert (await api.get(equal["id"]))["rollout"] is not None
    [aborted] = [e for e in await api.events() if e["type"] == "directive.rollout_aborted"]
    assert (aborted["directive_id"], aborted["actor"]) == (worse["id"], GUARD_ACTOR)
    assert aborted["payload"]["reason"] == "guard"
    # Judged again, the aborted one has no rollout to abort.
    assert await guard.check(api.realm, worse["id"]) is False
