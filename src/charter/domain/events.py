"""The event types of a realm's feed: the one list, used by every producer and the filter."""

from __future__ import annotations

import enum


class EventType(enum.StrEnum):
    CREATED = "directive.created"
    VERSION_CREATED = "directive.version_created"
    UPDATED = "directive.updated"
    MOVED = "directive.moved"
    STATUS_CHANGED = "directive.status_changed"
    ROLLED_BACK = "directive.rolled_back"
    DEACTIVATED = "directive.deactivated"
    ROLLOUT_STARTED = "directive.rollout_started"
    ROLLOUT_CHANGED = "directive.rollout_changed"
    ROLLOUT_PROMOTED = "directive.rollout_promoted"
    ROLLOUT_ABORTED = "directive.rollout_aborted"
    # A webhook whose deliveries failed for the whole retry horizon (`directive_id` holds the
    # webhook's id: the feed's events all name the thing they are about there).
    WEBHOOK_DISABLED = "webhook.disabled"
    # Work coordination (§10): a claim and how it ended.
    CLAIMED = "directive.claimed"
    CLAIM_EXPIRED = "directive.claim_expired"
    SUCCEEDED = "directive.succeeded"
    FAILED = "directive.failed"
    # Schedules (§8): made, cancelled, or failed (a schedule that runs writes the action's own
    # events, as the actor `schedule:{id}`).
    SCHEDULE_CREATED = "schedule.created"
    SCHEDULE_CANCELLED = "schedule.cancelled"
    SCHEDULE_FAILED = "schedule.failed"
    # Template variables' values (DESIGN §9): no directive, so `directive_id` is "".
    PROFILE_UPDATED = "agent.profile_updated"
    VARIABLES_UPDATED = "realm.variables_updated"
