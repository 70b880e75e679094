"""Work coordination's vocabulary and limits: claim states, leases, results, schedule actions."""

from __future__ import annotations

import enum
import json
from typing import Any

from charter.domain.tree import Status
from charter.errors import InvalidRequest

LEASE_MIN_SECONDS = 5
LEASE_MAX_SECONDS = 3600
RESULT_MAX_BYTES = 8192
ERROR_CODE_MAX = 128
VERSION_MAX = 2**31 - 1  # the versions table's integer


class ClaimState(enum.StrEnum):
    LIVE = "live"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"


class Outcome(enum.StrEnum):
    """How the holder of a claim says its work ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ScheduleState(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ActionKind(enum.StrEnum):
    """What a schedule does when it runs; each is one key of the action object."""

    ACTIVATE = "activate"
    STATUS = "status"
    ROLLOUT = "rollout"
    PROMOTE = "promote"


# The actor of a lease that ran out: no key released it.
LEASE_ACTOR = "charter:lease"


def schedule_actor(schedule_id: str) -> str:
    return f"schedule:{schedule_id}"


def check_result(result: Any) -> None:
    """A finish's `result`: any JSON, at most 8 KiB encoded. Never logged, never echoed."""
    if result is None:
        return
    size = len(json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode())
    if size > RESULT_MAX_BYTES:
        raise InvalidRequest(f"result is over {RESULT_MAX_BYTES} bytes of JSON")


def action_kind(action: dict[str, Any]) -> ActionKind:
    """Check a schedule's action (one of the four shapes of §8) and name its kind."""
    if len(action) != 1:
        raise InvalidRequest("action has exactly one of activate, status, rollout, promote")
    ((name, value),) = action.items()
    try:
        kind = ActionKind(name)
    except ValueError:
        raise InvalidRequest(
            "action has exactly one of activate, status, rollout, promote"
        ) from None
    if kind is ActionKind.ACTIVATE:
        if type(value) is not int or not 1 <= value <= VERSION_MAX:
            raise InvalidRequest("activate names a version number (≥ 1)")
    elif kind is ActionKind.STATUS:
        if not isinstance(value, str) or value not in {s.value for s in Status}:
            raise InvalidRequest("status is one of " + ", ".join(s.value for s in Status))
    elif kind is ActionKind.ROLLOUT:
        _check_rollout(value)
    elif value is not True:
        raise InvalidRequest("promote is true")
    return kind


def _check_rollout(value: Any) -> None:
    percent = value.get("percent") if isinstance(value, dict) else None
    if (
        not isinstance(value, dict)
        or set(value) != {"percent"}
        or type(percent) not in (int, float)
    ):
        raise InvalidRequest('rollout is {"percent": p}, 0 to 100 with two decimals')
    assert isinstance(percent, int | float)
    if not 0 <= percent <= 100 or round(percent, 2) != percent:
        raise InvalidRequest('rollout is {"percent": p}, 0 to 100 with two decimals')
