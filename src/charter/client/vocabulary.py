"""The API's words, as the client and the CLI know them: one list each.

The client is installed without the server, so it cannot import `charter.domain`; these are
the wire values of the server's enums, written once here. Everything in the client and the
CLI takes its words from this module (`typing.get_args` of a Literal gives its list), and
tests/domain/test_vocabulary.py fails when a server value is missing here, or one here is
unknown to the server.
"""

from __future__ import annotations

from typing import Literal, get_args

Level = Literal["realm", "team", "agent"]
Status = Literal["active", "paused", "completed", "cancelled"]
Priority = Literal["critical", "high", "normal", "low"]
InjectionMode = Literal["system_first", "system_append", "user_prepend"]
Role = Literal["admin", "operator", "reader", "agent"]
InjectFormat = Literal["openai-chat", "openai-responses", "anthropic"]
ClaimState = Literal["live", "succeeded", "failed", "expired"]
Outcome = Literal["succeeded", "failed"]
ScheduleState = Literal["pending", "done", "failed", "cancelled"]

LEVELS: tuple[Level, ...] = get_args(Level)
STATUSES: tuple[Status, ...] = get_args(Status)
PRIORITIES: tuple[Priority, ...] = get_args(Priority)
INJECTION_MODES: tuple[InjectionMode, ...] = get_args(InjectionMode)
ROLES: tuple[Role, ...] = get_args(Role)
INJECT_FORMATS: tuple[InjectFormat, ...] = get_args(InjectFormat)
CLAIM_STATES: tuple[ClaimState, ...] = get_args(ClaimState)
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
SCHEDULE_STATES: tuple[ScheduleState, ...] = get_args(ScheduleState)

# Completed or cancelled: a node leaves these only by a reopen. Every other status is open.
TERMINAL: frozenset[Status] = frozenset({"completed", "cancelled"})

# Which levels may hold a node of each level (None-parent: only a realm node is a root).
ALLOWED_PARENTS: dict[Level, frozenset[Level]] = {
    "realm": frozenset(),
    "team": frozenset({"realm", "team"}),
    "agent": frozenset({"realm", "team", "agent"}),
}
