"""What the API answers, as the client sees it: msgspec structs that mirror `charter.api.wire`.

Defined here rather than imported so that the client needs no server dependency. Responses
accept unknown fields, so a newer server does not break an older client.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from msgspec import UNSET, Struct, UnsetType, field

from charter.client.vocabulary import (
    TERMINAL,
    ClaimState,
    InjectFormat,
    InjectionMode,
    Level,
    Outcome,
    Priority,
    Role,
    ScheduleState,
    Status,
)

__all__ = [
    "TERMINAL",
    "ClaimState",
    "InjectFormat",
    "InjectionMode",
    "Level",
    "Outcome",
    "Priority",
    "Role",
    "ScheduleState",
    "Status",
]


class Realm(Struct, kw_only=True):
    id: str
    name: str
    revision: int
    created_at: datetime


class RealmPage(Struct, kw_only=True):
    items: list[Realm]
    next_cursor: str | None


class Guard(Struct, kw_only=True):
    """Abort the rollout once both arms hold `min_samples` and the candidate is worse than
    control by more than `max_regression` at 95 % confidence."""

    metric: str
    higher_is_better: bool
    min_samples: int
    max_regression: float


class Rollout(Struct, kw_only=True):
    id: str
    version: int
    percent: float
    agents: list[str]
    guard: Guard | None
    started_at: datetime


class ArmStats(Struct, kw_only=True):
    n: int
    mean: float | None
    sd: float | None


class Difference(Struct, kw_only=True):
    estimate: float
    low: float
    high: float
    df: float


class MetricReport(Struct, kw_only=True):
    metric: str
    candidate: ArmStats
    control: ArmStats
    difference: Difference | None


class RolloutReport(Struct, kw_only=True):
    directive_id: str
    revision: int
    active_version: int | None
    rollout: Rollout
    metrics: list[MetricReport]


class Attribution(Struct, kw_only=True):
    rollout_id: str
    directive_id: str
    arm: str


class OutcomeAccepted(Struct, kw_only=True):
    id: str
    attributed: list[Attribution]


class Directive(Struct, kw_only=True):
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
    rollout: Rollout | None = None
    not_before: datetime | None = None
    last_failure: dict[str, Any] | None = None
    changed: bool | None = None


class DirectiveSummary(Struct, kw_only=True):
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
    rollout: Rollout | None = None
    not_before: datetime | None = None
    last_failure: dict[str, Any] | None = None


class DirectivePage(Struct, kw_only=True):
    items: list[DirectiveSummary]
    next_cursor: str | None


class NewDirective(Struct, kw_only=True, omit_defaults=True):
    """The body of a create."""

    level: Level
    title: str
    body: str
    parent_id: str | None = None
    key: str | None = None
    status: Status = "active"
    priority: Priority = "normal"
    owner_agent_id: str | None = None
    injection_mode: InjectionMode = "system_first"
    metadata: dict[str, Any] = {}
    message: str | None = None
    not_before: datetime | None = None


class Patch(Struct, kw_only=True, omit_defaults=True):
    """A PATCH: only the fields that are set are sent (`None` clears owner, parent or key)."""

    title: str | UnsetType = UNSET
    body: str | UnsetType = UNSET
    message: str | UnsetType = UNSET
    status: Status | UnsetType = UNSET
    priority: Priority | UnsetType = UNSET
    owner_agent_id: str | UnsetType | None = UNSET
    parent_id: str | UnsetType | None = UNSET
    injection_mode: InjectionMode | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET
    key: str | UnsetType | None = UNSET
    not_before: datetime | UnsetType | None = UNSET
    reopen: bool = False
    cascade: bool = False
    activate: bool = True  # False: a draft, served by nothing until activated or rolled out


class VersionSummary(Struct, kw_only=True):
    version: int
    title: str
    content_hash: str
    author: str
    author_name: str | None
    message: str | None
    based_on: int | None
    created_at: datetime


class Version(Struct, kw_only=True):
    directive_id: str
    version: int
    title: str
    body: str
    content_hash: str
    author: str
    author_name: str | None
    message: str | None
    based_on: int | None
    created_at: datetime


class VersionPage(Struct, kw_only=True):
    items: list[VersionSummary]
    next_cursor: str | None


class Diff(Struct, kw_only=True):
    from_: int = field(name="from")
    to: int
    diff: str


class Ancestor(Struct, kw_only=True):
    id: str
    key: str | None
    level: Level
    title: str
    status: Status
    priority: Priority
    owner_agent_id: str | None
    revision: int
    active_version: int | None


class Ancestry(Struct, kw_only=True):
    ancestry: list[Ancestor]
    depth: int


class TreeNode(Struct, kw_only=True):
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
    children: list[TreeNode]


class Forest(Struct, kw_only=True):
    realm_id: str
    revision: int
    roots: list[TreeNode]


class HistoryEntry(Struct, kw_only=True):
    seq: int
    type: str
    revision: int
    version: int | None
    actor: str
    actor_name: str | None
    message: str | None
    occurred_at: datetime
    payload: dict[str, Any]


class HistoryPage(Struct, kw_only=True):
    items: list[HistoryEntry]
    next_cursor: str | None


class Event(Struct, kw_only=True):
    seq: int
    type: str
    directive_id: str
    revision: int
    version: int | None
    actor: str
    occurred_at: datetime
    affected_agents: list[str]
    payload: dict[str, Any]


class EventPage(Struct, kw_only=True):
    items: list[Event]
    next_cursor: int | None


class Claim(Struct, kw_only=True):
    id: str
    directive_id: str
    agent_id: str
    attempt: int
    state: ClaimState
    lease_seconds: int
    created_at: datetime
    expires_at: datetime
    finished_at: datetime | None = None
    error_code: str | None = None
    result: Any = None


class ClaimPage(Struct, kw_only=True):
    items: list[Claim]
    next_cursor: str | None
    claimable: list[str] | None = None


class Finished(Struct, kw_only=True):
    claim: Claim
    directive_id: str
    status: Status
    revision: int
    changed: bool
    reused: bool


class Schedule(Struct, kw_only=True):
    id: str
    directive_id: str
    at: datetime
    action: dict[str, Any]
    state: ScheduleState
    expected_revision: int | None = None
    created_at: datetime | None = None
    ran_at: datetime | None = None
    reason: str | None = None


class SchedulePage(Struct, kw_only=True):
    items: list[Schedule]
    next_cursor: str | None


class Agent(Struct, kw_only=True):
    agent_id: str
    directives: int
    active: int
    claims: list[Claim] = []


class AgentPage(Struct, kw_only=True):
    items: list[Agent]
    next_cursor: str | None


class Layer(Struct, kw_only=True):
    directive_id: str
    level: Level
    depth: int
    title: str | None
    version: int | None
    revision: int
    arm: str | None = None  # "candidate" or "control" while a rollout of it runs


class Prompt(Struct, kw_only=True):
    """An agent's composed prompt. `stale` is the client's: True when served from its copy
    because the server could not be reached."""

    composition_id: str
    realm_id: str
    agent_id: str
    injection_mode: InjectionMode
    text: str
    layers: list[Layer]
    realm_revision: int
    stale: bool = False


class Composition(Struct, kw_only=True):
    composition_id: str
    realm_id: str
    agent_id: str
    renderer_version: int
    injection_mode: InjectionMode
    text: str
    layers: list[Layer]
    created_at: datetime


class Injected(Struct, kw_only=True):
    """An injected request: the fields of its `format`, with the composed prompt placed."""

    composition_id: str
    injection_mode: InjectionMode
    format: InjectFormat = "openai-chat"  # a server before formats answered chat only
    messages: list[dict[str, Any]] | UnsetType = UNSET
    input: str | list[dict[str, Any]] | UnsetType = UNSET
    instructions: str | UnsetType | None = UNSET
    system: str | list[dict[str, Any]] | UnsetType = UNSET

    def kwargs(self) -> dict[str, Any]:
        """The request fields, to hand straight to the provider's SDK:
        `client.chat.completions.create(model=…, **injected.kwargs())` (openai-chat),
        `client.responses.create(model=…, **…)` (openai-responses),
        `client.messages.create(model=…, max_tokens=…, **…)` (anthropic)."""
        names = _REQUEST_FIELDS[self.format]
        return {n: getattr(self, n) for n in names if getattr(self, n) is not UNSET}


_REQUEST_FIELDS: dict[InjectFormat, tuple[str, ...]] = {
    "openai-chat": ("messages",),
    "openai-responses": ("input", "instructions"),
    "anthropic": ("system", "messages"),
}


class ApiKey(Struct, kw_only=True):
    id: str
    role: Role
    realms: list[str]
    agent_id: str | None
    name: str | None
    created_at: datetime
    revoked_at: datetime | None


class CreatedKey(ApiKey, kw_only=True):
    key: str  # the secret, shown once


class KeyPage(Struct, kw_only=True):
    items: list[ApiKey]
    next_cursor: str | None


class Webhook(Struct, kw_only=True):
    id: str
    realm_id: str
    url: str
    events: list[str]
    agents: list[str] | None
    state: str  # "active" or "disabled"
    delivered_seq: int
    failures: int
    failing_since: datetime | None
    next_attempt_at: datetime
    disabled_at: datetime | None
    created_by: str
    created_at: datetime


class CreatedWebhook(Webhook, kw_only=True):
    secret: str | None  # the signing secret (`whsec_…`), shown once; None on a replay


class WebhookPage(Struct, kw_only=True):
    items: list[Webhook]
    next_cursor: str | None


class Delivery(Struct, kw_only=True):
    id: str
    webhook_id: str
    seq: int
    message_id: str  # the `webhook-id` header: the same on every attempt of one event
    event_type: str
    attempt: int
    manual: bool
    status_code: int | None
    error: str | None
    latency_ms: float
    attempted_at: datetime


class DeliveryPage(Struct, kw_only=True):
    items: list[Delivery]
    next_cursor: str | None


class Problem(Struct, kw_only=True):
    type: str = "about:blank"
    title: str = ""
    status: int = 0
    code: str = "unknown"
    detail: str | None = None
    current_revision: int | None = None
    etag: str | None = None
    errors: list[dict[str, str]] | None = None
    holder: str | None = None
    expires_at: str | None = None
    not_before: str | None = None
    # undefined-variable: the name, the first 20 agents and how many in all.
    variable: str | None = None
    agents: list[str] | None = None
    count: int | None = None


class Variables(Struct, kw_only=True):
    """An agent's profile (`agent_id` set) or a realm's defaults: template variables' values
    under their own revision (0: never set)."""

    realm_id: str
    agent_id: str | None = None
    revision: int
    variables: dict[str, str]
    updated_at: datetime | None = None
    changed: bool = True
