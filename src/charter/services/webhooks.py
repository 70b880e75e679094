"""Webhook use cases: create (the secret is shown once), remove, enable again."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from charter.clock import utcnow
from charter.domain import webhooks as rules
from charter.domain.events import EventType
from charter.errors import InvalidRequest
from charter.ids import new_id
from charter.services.sender import checked
from charter.store import realms
from charter.store import webhooks as store
from charter.store.webhooks import Webhook

EVENT_TYPES = frozenset(t.value for t in EventType)


def _event_types(given: Sequence[str]) -> list[str]:
    if rules.EVERY in given:
        if len(given) != 1:
            raise InvalidRequest('events is a list of event types, or ["*"] alone')
        return [rules.EVERY]
    unknown = set(given) - EVENT_TYPES
    if unknown:
        raise InvalidRequest(f"unknown event type; known: {sorted(EVENT_TYPES)}")
    return sorted(set(given))


async def create(
    conn: AsyncConnection,
    realm_id: str,
    url: str,
    event_types: Sequence[str],
    agents: Sequence[str] | None,
    creator: str,
    allow_private: bool,
) -> Webhook:
    """A new webhook, delivered every wanted event committed after this one."""
    types = _event_types(event_types)
    try:
        rules.target(url)
    except rules.BadTarget as exc:
        raise InvalidRequest(str(exc)) from exc
    await checked(url, allow_private)
    realm = await realms.get(conn, realm_id)
    now = utcnow()
    hook = Webhook(
        realm_id=realm_id,
        id=new_id("whk"),
        url=url,
        secret=rules.new_secret(),
        events=types,
        agents=None if agents is None else sorted(set(agents)),
        created_by=creator,
        created_at=now,
        state=store.ACTIVE,
        delivered_seq=realm.revision,
        failures=0,
        failing_since=None,
        next_attempt_at=now,
        disabled_at=None,
    )
    await store.create(conn, hook)
    return hook


async def remove(conn: AsyncConnection, realm_id: str, webhook_id: str) -> None:
    """The webhook, its cursor and its delivery log: nothing more is sent."""
    await store.remove(conn, realm_id, webhook_id)


async def enable(conn: AsyncConnection, realm_id: str, webhook_id: str) -> Webhook:
    """Deliver again (after `webhook.disabled`), from where its cursor stands."""
    await store.enable(conn, realm_id, webhook_id, utcnow())
    return await store.get(conn, realm_id, webhook_id)
