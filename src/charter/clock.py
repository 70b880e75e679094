"""The one clock: every timestamp Charter writes is UTC, and read back as aware.

`utcnow` is the wall clock. Where an order is decided (a realm's feed), the store does not
take it raw: `store.realms.sequence`, the feed's sequencer, gives each event a time no earlier
than the realm's last event, under the lock that orders the feed (docs/architecture.md).
"""

from __future__ import annotations

from datetime import UTC, datetime


def aware(value: datetime) -> datetime:
    """SQLite hands timestamps back naive; they were written as UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)
