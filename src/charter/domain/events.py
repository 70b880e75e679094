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
    # Template variables' values (DESIGN §9): no directive, so `directive_id` is "".
    PROFILE_UPDATED = "agent.profile_updated"
    VARIABLES_UPDATED = "realm.variables_updated"
