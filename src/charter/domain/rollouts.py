"""Rollouts: which arm an agent is in, and what a rollout looks like as a value (DESIGN §8).

Pure. An agent sees the candidate iff it is pinned or its bucket is below the percent in basis
points; the bucket hashes the directive, the rollout and the agent (ADR 0007), so raising the
percent only adds agents and an agent's arm never changes while the percent stands.
"""

from __future__ import annotations

import enum
import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from charter.errors import InvalidRequest

BUCKETS = 10_000  # basis points: a percent with two decimals
MAX_PINNED = 1_000
METRIC_PATTERN = r"[a-z0-9][a-z0-9._-]{0,63}"
_METRIC = re.compile(METRIC_PATTERN)
GUARD_ACTOR = "charter:guard"


class Arm(enum.StrEnum):
    CANDIDATE = "candidate"
    CONTROL = "control"


def bucket(directive_id: str, rollout_id: str, agent_id: str) -> int:
    """The first 4 bytes of sha256(`directive_id:rollout_id:agent_id`), unsigned, mod 10 000."""
    digest = hashlib.sha256(f"{directive_id}:{rollout_id}:{agent_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % BUCKETS


def basis_points(percent: float) -> int:
    """A percent of 0-100 with at most two decimals, in basis points."""
    if not math.isfinite(percent) or not 0 <= percent <= 100:
        raise InvalidRequest("percent must be between 0 and 100")
    points = round(percent * 100)
    if abs(percent * 100 - points) > 1e-6:
        raise InvalidRequest("percent has at most two decimals")
    return points


# An outcome's value, either way: the report squares differences of values and sums them, and
# past this a sum of squares could overflow (a 500 on every report of the rollout).
MAX_OUTCOME_VALUE = 1e15


def check_value(value: float) -> None:
    if not -MAX_OUTCOME_VALUE <= value <= MAX_OUTCOME_VALUE:  # NaN fails both
        raise InvalidRequest(
            f"value must be a number from {-MAX_OUTCOME_VALUE:g} to {MAX_OUTCOME_VALUE:g}"
        )


def check_metric(metric: str) -> None:
    if _METRIC.fullmatch(metric) is None:
        raise InvalidRequest(f"metric must match {METRIC_PATTERN}")


@dataclass(frozen=True, slots=True)
class Guard:
    """Abort once both arms hold `min_samples` and the candidate is worse by more than
    `max_regression` at 95 % confidence."""

    metric: str
    higher_is_better: bool
    min_samples: int
    max_regression: float

    def __post_init__(self) -> None:
        check_metric(self.metric)
        if self.min_samples < 2:
            raise InvalidRequest("guard.min_samples must be at least 2")
        if not math.isfinite(self.max_regression) or self.max_regression < 0:
            raise InvalidRequest("guard.max_regression must be a finite number ≥ 0")


@dataclass(frozen=True, slots=True)
class Rollout:
    """A running rollout, as `directives.rollout` holds it."""

    id: str
    version: int
    percent_bp: int
    agents: frozenset[str]
    guard: Guard | None
    started_at: datetime

    def arm_of(self, directive_id: str, agent_id: str) -> Arm:
        if agent_id in self.agents or bucket(directive_id, self.id, agent_id) < self.percent_bp:
            return Arm.CANDIDATE
        return Arm.CONTROL

    @property
    def percent(self) -> float:
        return self.percent_bp / 100

    def to_json(self) -> dict[str, Any]:
        guard = None
        if self.guard is not None:
            guard = {
                "metric": self.guard.metric,
                "higher_is_better": self.guard.higher_is_better,
                "min_samples": self.guard.min_samples,
                "max_regression": self.guard.max_regression,
            }
        return {
            "id": self.id,
            "version": self.version,
            "percent_bp": self.percent_bp,
            "agents": sorted(self.agents),
            "guard": guard,
            "started_at": self.started_at.isoformat(),
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Rollout:
        guard = value.get("guard")
        return cls(
            id=value["id"],
            version=int(value["version"]),
            percent_bp=int(value["percent_bp"]),
            agents=frozenset(value.get("agents") or ()),
            guard=Guard(**guard) if guard else None,
            started_at=datetime.fromisoformat(value["started_at"]),
        )


def visible_version(
    rollout: Rollout | None, directive_id: str, active: int | None, agent_id: str
) -> tuple[int | None, Arm | None]:
    """The version of a directive this agent sees, and its arm (None: no rollout)."""
    if rollout is None:
        return active, None
    arm = rollout.arm_of(directive_id, agent_id)
    return (rollout.version if arm is Arm.CANDIDATE else active), arm
