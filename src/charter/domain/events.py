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
