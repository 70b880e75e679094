"""SQLite hands timestamps back naive; every timestamp Charter writes is UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)
