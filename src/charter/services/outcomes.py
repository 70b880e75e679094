"""Outcomes: a metric's value against a composition, counted to the arm that composition
showed of every rollout running on one of its layers; and the per-arm report (DESIGN §8)."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection

from charter.clock import utcnow
from charter.domain.experiments import Difference, Summary, summarise, welch
from charter.domain.rollouts import Arm, check_metric, check_value
from charter.errors import NotFound
from charter.ids import new_id
from charter.services.prompts import LayerDocument
from charter.store import compositions, rollouts
from charter.store.rollouts import NewOutcome


@dataclass(frozen=True, slots=True)
class Attribution:
    rollout_id: str
    directive_id: str
    arm: Arm


@dataclass(frozen=True, slots=True)
class Accepted:
    id: str
    attributed: list[Attribution]


async def record(
    conn: AsyncConnection,
    realm_id: str,
    composition_id: str,
    agent_id: str,
    metric: str,
    value: float,
) -> Accepted:
    """Count the outcome to each running rollout among the composition's layers.

    The arm is the one the prompt really showed: its layer's version is the candidate's, or
    the active one's (control). A layer at any other version (a prompt from before the active
    version moved) counts to neither.
    """
    check_metric(metric)
    check_value(value)
    if not await compositions.belongs(conn, realm_id, composition_id, agent_id):
        raise NotFound(f"composition {composition_id!r} is not agent {agent_id!r}'s")
    record = await compositions.get(conn, realm_id, composition_id)
    layers = msgspec.convert(record.layers, list[LayerDocument])
    shown = {layer.directive_id: layer.version for layer in layers if layer.version is not None}
    outcome_id = new_id("out")
    now = utcnow()
    attributed: list[Attribution] = []
    for run in await rollouts.running(conn, realm_id, sorted(shown)):
        version = shown[run.directive_id]
        if version == run.rollout.version:
            arm = Arm.CANDIDATE
        elif version == run.active_version:
            arm = Arm.CONTROL
        else:
            continue
        attributed.append(Attribution(run.rollout.id, run.directive_id, arm))
    rows = [
        NewOutcome(
            rollout_id=a.rollout_id,
            id=outcome_id,
            directive_id=a.directive_id,
            arm=a.arm.value,
            metric=metric,
            value=value,
            agent_id=agent_id,
            composition_id=composition_id,
            created_at=now,
        )
        for a in attributed
    ]
    await rollouts.add_outcomes(conn, realm_id, rows)
    return Accepted(outcome_id, attributed)


@dataclass(frozen=True, slots=True)
class MetricReport:
    metric: str
    candidate: Summary
    control: Summary
    difference: Difference | None


async def report(
    conn: AsyncConnection, realm_id: str, rollout_id: str, metric: str | None = None
) -> list[MetricReport]:
    """Per metric (by name): each arm's n, mean and sd, and candidate - control (Welch)."""
    out: list[MetricReport] = []
    by_metric = await rollouts.values(conn, realm_id, rollout_id, metric)
    for name in sorted(by_metric):
        arms = by_metric[name]
        candidate = summarise(arms.get(Arm.CANDIDATE.value, []))
        control = summarise(arms.get(Arm.CONTROL.value, []))
        out.append(MetricReport(name, candidate, control, welch(candidate, control)))
    return out
