"""Wire types: what crosses HTTP. Separate from tables and domain records on purpose."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from msgspec import UNSET, Meta, Struct, UnsetType, field

from charter.domain.injection import InjectFormat
from charter.domain.rollouts import MAX_OUTCOME_VALUE
from charter.domain.tree import InjectionMode, Level, Priority, Status
from charter.domain.work import (
    ERROR_CODE_MAX,
    LEASE_MAX_SECONDS,
    LEASE_MIN_SECONDS,
    ClaimState,
    Outcome,
    ScheduleState,
)

# Python's `$` also matches before a final newline, so "abc\n" would pass `^[a-z]+$`; the
# lookahead refuses that, and is a no-op in JSON Schema's regex dialect (the OpenAPI document).
_END = r"$(?!\n)"
REALM_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}" + _END
KEY_PATTERN = r"^[a-z0-9][a-z0-9._/-]{0,127}" + _END
AGENT_ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,128}" + _END
RealmId = Annotated[str, Meta(pattern=REALM_ID_PATTERN, description="a realm slug")]
DirectiveId = Annotated[str, Meta(pattern=r"^dir_[0-9a-hjkmnp-tv-z]{26}" + _END)]
Key = Annotated[str, Meta(pattern=KEY_PATTERN)]
AgentId = Annotated[str, Meta(pattern=AGENT_ID_PATTERN)]
Title = Annotated[str, Meta(min_length=1, max_length=256, description="one line, ≤ 256 chars")]
Body = Annotated[str, Meta(min_length=1, description="≤ 32 768 bytes of UTF-8")]
Message = Annotated[str, Meta(max_length=4096, pattern=r"^[^\x00]*$")]
Name = Annotated[str, Meta(min_length=1, max_length=256, pattern=r"^[^\x00]*$")]
Revision = Annotated[int, Meta(ge=1)]
VersionNumber = Annotated[int, Meta(ge=1)]
Instant = Annotated[datetime, Meta(tz=True, description="RFC 3339, with a UTC offset")]


def _in_utc(name: str, value: object) -> None:
    """An Instant must be one in UTC too: `9999-12-31T23:59:59-23:59` parses, but converting
    it (to store it, to compare it) overflows. Call it from the Struct's __post_init__."""
    if isinstance(value, datetime):
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise ValueError(f"{name} is outside the years 1 to 9999 in UTC") from None


class _In(Struct, forbid_unknown_fields=True, kw_only=True):
    """Requests refuse unknown fields: a typo must not be silently ignored."""


class RealmCreate(_In):
    id: RealmId
    name: Name | None = None


class RealmOut(Struct, kw_only=True):
    id: str
    name: str
    revision: int
    created_at: datetime


class DirectiveCreate(_In):
    level: Level
    title: Title
    body: Body
    parent_id: DirectiveId | None = None
    key: Key | None = None
    status: Status = Status.ACTIVE
    priority: Priority = Priority.NORMAL
    owner_agent_id: AgentId | None = None
    injection_mode: InjectionMode = InjectionMode.SYSTEM_FIRST
    metadata: dict[str, Any] = {}
    message: Message | None = None
    not_before: Instant | None = None

    def __post_init__(self) -> None:
        _in_utc("not_before", self.not_before)


class DirectivePatch(_In):
    title: Title | UnsetType = UNSET
    body: Body | UnsetType = UNSET
    message: Message | None = None
    status: Status | UnsetType = UNSET
    priority: Priority | UnsetType = UNSET
    owner_agent_id: AgentId | UnsetType | None = UNSET
    parent_id: DirectiveId | UnsetType | None = UNSET
    injection_mode: InjectionMode | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET
    key: Key | UnsetType | None = UNSET
    not_before: Instant | UnsetType | None = UNSET
    reopen: bool = False
    cascade: bool = False
    activate: bool = True
    expected_revision: Revision | UnsetType = UNSET

    def __post_init__(self) -> None:
        _in_utc("not_before", self.not_before)


class RollbackIn(_In):
    version: VersionNumber
    expected_revision: Revision | UnsetType = UNSET
    message: Message | None = None


class DeactivateIn(_In):
    """DELETE may carry a body; without one, If-Match must name the revision."""

    expected_revision: Revision | UnsetType = UNSET
    message: Message | None = None


Percent = Annotated[float, Meta(ge=0, le=100, description="0-100, at most two decimals")]
Metric = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}" + _END)]


class GuardIn(_In):
    metric: Metric
    higher_is_better: bool
    min_samples: Annotated[int, Meta(ge=2, le=1_000_000)]
    max_regression: Annotated[float, Meta(ge=0)]


class GuardOut(Struct, kw_only=True):
    metric: str
    higher_is_better: bool
    min_samples: int
    max_regression: float


class RolloutOut(Struct, kw_only=True):
    """A running rollout: its candidate version, percent and pinned agents (DESIGN §8)."""

    id: str
    version: int
    percent: float
    agents: list[str]
    guard: GuardOut | None
    started_at: datetime


class RolloutIn(_In):
    """PUT …/rollout: start a rollout of `version`, or change the running one's percent,
    pinned agents or guard."""

    version: VersionNumber
    percent: Percent
    agents: Annotated[list[AgentId], Meta(max_length=1000)] = []
    guard: GuardIn | None = None
    expected_revision: Revision | UnsetType = UNSET
    message: Message | None = None


class RolloutEndIn(_In):
    """POST …/rollout/promote and DELETE …/rollout: the expected revision, if not in If-Match."""

    expected_revision: Revision | UnsetType = UNSET
    message: Message | None = None


class ArmStats(Struct, kw_only=True):
    n: int
    mean: float | None
    sd: float | None


class DifferenceOut(Struct, kw_only=True):
    """candidate - control with its Welch 95 % interval."""

    estimate: float
    low: float
    high: float
    df: float


class MetricReport(Struct, kw_only=True):
    metric: str
    candidate: ArmStats
    control: ArmStats
    difference: DifferenceOut | None


class RolloutReport(Struct, kw_only=True):
    """GET …/rollout: the running rollout, how many agents are in each arm, and per metric
    each arm's outcomes."""

    directive_id: str
    revision: int
    active_version: int | None
    rollout: RolloutOut
    metrics: list[MetricReport]


class OutcomeIn(_In):
    composition_id: Annotated[str, Meta(pattern=r"^cmp_[0-9a-f]{64}" + _END)]
    agent_id: AgentId
    metric: Metric
    value: Annotated[float, Meta(ge=-MAX_OUTCOME_VALUE, le=MAX_OUTCOME_VALUE)]


class Attribution(Struct, kw_only=True):
    rollout_id: str
    directive_id: str
    arm: str


class OutcomeAccepted(Struct, kw_only=True):
    """202: the outcome, and the rollout arms it counts towards (none when no rollout of a
    layer of that composition runs)."""

    id: str
    attributed: list[Attribution]


class DirectiveOut(Struct, kw_only=True):
    id: str
    realm_id: str
    key: str | None
    level: Level
    parent_id: str | None
    title: str
    body: str
    status: Status
    priority: Priority
    owner_agent_id: str | None
    injection_mode: InjectionMode
    metadata: dict[str, Any]
    revision: int
    active_version: int | None
    latest_version: int
    created_at: datetime
    updated_at: datetime
    rollout: RolloutOut | None
    not_before: datetime | None
    last_failure: dict[str, Any] | None
    changed: bool | UnsetType = UNSET


class DirectiveSummary(Struct, kw_only=True):
    """A list item: every field but the body."""

    id: str
    key: str | None
    level: Level
    parent_id: str | None
    title: str
    status: Status
    priority: Priority
    owner_agent_id: str | None
    injection_mode: InjectionMode
    metadata: dict[str, Any]
    revision: int
    active_version: int | None
    latest_version: int
    created_at: datetime
    updated_at: datetime
    rollout: RolloutOut | None
    not_before: datetime | None
    last_failure: dict[str, Any] | None


class DirectivePage(Struct):
    items: list[DirectiveSummary]
    next_cursor: str | None


class VersionSummary(Struct, kw_only=True):
    version: int
    title: str
    content_hash: str
    author: str
    author_name: str | None = None
    message: str | None
    based_on: int | None
    created_at: datetime


class VersionOut(Struct, kw_only=True):
    directive_id: str
    version: int
    title: str
    body: str
    content_hash: str
    author: str
    author_name: str | None = None
    message: str | None
    based_on: int | None
    created_at: datetime


class VersionPage(Struct):
    items: list[VersionSummary]
    next_cursor: str | None


class DiffOut(Struct, kw_only=True):
    from_: int = field(name="from")  # `from` is a Python keyword
    to: int
    diff: str


class AncestorOut(Struct, kw_only=True):
    id: str
    key: str | None
    level: Level
    title: str
    status: Status
    priority: Priority
    owner_agent_id: str | None
    revision: int
    active_version: int | None


class AncestryOut(Struct):
    ancestry: list[AncestorOut]
    depth: int


class TreeNodeOut(Struct, kw_only=True):
    id: str
    key: str | None
    level: Level
    title: str
    status: Status
    priority: Priority
    owner_agent_id: str | None
    injection_mode: InjectionMode
    revision: int
    active_version: int | None
    latest_version: int
    children: list[TreeNodeOut] = []


class ForestOut(Struct):
    realm_id: str
    revision: int
    roots: list[TreeNodeOut]


class HistoryEntry(Struct, kw_only=True):
    """One change: what, who (key id and name), when, and why (the message)."""

    seq: int
    type: str
    revision: int
    version: int | None
    actor: str
    actor_name: str | None = None
    message: str | None
    occurred_at: datetime
    payload: dict[str, Any]


class HistoryPage(Struct):
    items: list[HistoryEntry]
    next_cursor: str | None


class EventOut(Struct, kw_only=True):
    seq: int
    type: str
    directive_id: str
    revision: int
    version: int | None
    actor: str
    occurred_at: datetime
    affected_agents: list[str]
    payload: dict[str, Any]


class EventPage(Struct):
    items: list[EventOut]
    next_cursor: int | None


class RealmPage(Struct):
    items: list[RealmOut]
    next_cursor: str | None


class Problem(Struct, kw_only=True, omit_defaults=True):
    type: str
    title: str
    status: int
    code: str
    detail: str | None = None
    current_revision: int | None = None
    etag: str | None = None
    errors: list[dict[str, str]] | None = None
    # already-claimed: who holds the claim and until when; not-due: when it becomes due.
    holder: str | None = None
    expires_at: str | None = None
    not_before: str | None = None
    # undefined-variable (DESIGN §9): the name, the first 20 agents and how many in all.
    variable: str | None = None
    agents: list[str] | None = None
    count: int | None = None


class ClaimOut(Struct, kw_only=True):
    id: str
    directive_id: str
    agent_id: str
    attempt: int
    state: ClaimState
    lease_seconds: int
    created_at: datetime
    expires_at: datetime
    finished_at: datetime | None
    error_code: str | None
    result: Any = None


class AgentOut(Struct, kw_only=True):
    agent_id: str
    directives: int
    active: int
    claims: list[ClaimOut] = []


class AgentPage(Struct):
    items: list[AgentOut]
    next_cursor: str | None


class ToolCallFunction(Struct, kw_only=True):
    name: str
    arguments: Annotated[str, Meta(description="the arguments, as a JSON text")]


class ToolCall(Struct, kw_only=True):
    id: str
    type: Annotated[str, Meta(examples=["function"])]
    function: ToolCallFunction


class ContentPart(Struct, kw_only=True):
    """One part of a message's content: text, or another kind the model takes (image_url…)."""

    type: Annotated[str, Meta(examples=["text", "image_url"])]
    text: str | UnsetType = UNSET


# Documentation only, of `InjectIn.messages` and `InjectOut.messages` (api/openapi.py): the
# messages are decoded as mappings, so that inject changes nothing it does not place.
class ChatMessage(Struct, kw_only=True):
    """A chat message as OpenAI-style APIs take it; fields not listed here pass through."""

    role: Annotated[
        str,
        Meta(
            description="system, developer, user, assistant or tool; any other role passes "
            "through unchanged",
            examples=["system", "user", "assistant"],
        ),
    ]
    content: str | list[ContentPart] | UnsetType | None = UNSET
    name: str | UnsetType = UNSET
    tool_calls: list[ToolCall] | UnsetType = UNSET
    tool_call_id: str | UnsetType = UNSET


class InputItem(Struct, kw_only=True):
    """An OpenAI Responses input item: a message (`role`, `content`) or an item without a role
    (`function_call`, `function_call_output`, `reasoning`, …); fields not listed pass through."""

    type: Annotated[str, Meta(examples=["message", "function_call"])] | UnsetType = UNSET
    role: Annotated[str, Meta(examples=["user", "assistant", "developer"])] | UnsetType = UNSET
    content: str | list[ContentPart] | UnsetType = UNSET


class SystemBlock(Struct, kw_only=True):
    """An Anthropic system block; `cache_control` and any other field pass through."""

    type: Annotated[str, Meta(examples=["text"])]
    text: str | UnsetType = UNSET
    cache_control: dict[str, Any] | UnsetType | None = UNSET


class InjectIn(_In):
    """What `format` names: openai-chat `{messages}`, openai-responses `{input,
    instructions?}`, anthropic `{system?, messages}`; no other field (api/inject.py)."""

    format: InjectFormat = InjectFormat.OPENAI_CHAT
    messages: list[dict[str, Any]] | UnsetType = UNSET  # documented per format (api/openapi.py)
    input: str | list[dict[str, Any]] | UnsetType = UNSET
    instructions: str | UnsetType | None = UNSET
    system: str | list[dict[str, Any]] | UnsetType = UNSET


class InjectOut(Struct, kw_only=True):
    """The request parts `format` has, with the text placed; absent ones stay absent."""

    composition_id: str
    injection_mode: InjectionMode
    format: InjectFormat
    messages: list[dict[str, Any]] | UnsetType = UNSET
    input: str | list[dict[str, Any]] | UnsetType = UNSET
    instructions: str | UnsetType | None = UNSET
    system: str | list[dict[str, Any]] | UnsetType = UNSET


Lease = Annotated[int, Meta(ge=LEASE_MIN_SECONDS, le=LEASE_MAX_SECONDS)]
ErrorCode = Annotated[str, Meta(min_length=1, max_length=ERROR_CODE_MAX, pattern=r"^[!-~]+$")]


class ClaimIn(_In):
    agent_id: AgentId
    lease_seconds: Lease
    rerun: bool = False


class HeartbeatIn(_In):
    """A heartbeat may carry a body; without one the lease is the claim's own."""

    lease_seconds: Lease | None = None


class FinishIn(_In):
    outcome: Outcome
    result: Any = None
    error_code: ErrorCode | None = None
    cascade: bool = False


class FinishOut(Struct, kw_only=True):
    claim: ClaimOut
    directive_id: str
    status: Status
    revision: int
    changed: bool
    reused: bool


class ClaimPage(Struct, kw_only=True):
    items: list[ClaimOut]
    next_cursor: str | None
    # With `agent_id`: the directives that agent may claim now (owned, active, due, unclaimed).
    claimable: list[str] | None = None


class ScheduleIn(_In):
    at: Instant
    action: dict[str, Any]
    # Stored, so bounded by its column (a bigint).
    expected_revision: Annotated[int, Meta(ge=1, le=2**63 - 1)] | None = None

    def __post_init__(self) -> None:
        _in_utc("at", self.at)


class ScheduleOut(Struct, kw_only=True):
    id: str
    directive_id: str
    at: datetime
    action: dict[str, Any]
    state: ScheduleState
    expected_revision: int | None
    created_at: datetime
    ran_at: datetime | None
    reason: str | None


class SchedulePage(Struct, kw_only=True):
    items: list[ScheduleOut]
    next_cursor: str | None
