"""Webhooks' rules on values: which events a webhook wants, which addresses it may reach, how
a delivery is signed (Standard Webhooks), and how long to wait after a failure."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from charter.domain.events import EventType

EVERY = "*"  # `events: ["*"]`: every event type
SECRET_PREFIX = "whsec_"
MAX_URL = 2048
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 3600.0

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class BadTarget(ValueError):
    """A URL a webhook may not have: not http(s), no host, or credentials in it."""


def new_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def message_id(webhook_id: str, seq: int) -> str:
    """The `webhook-id` of the webhook's delivery of event `seq`: the same on every retry."""
    return f"msg_{webhook_id.removeprefix('whk_')}_{seq}"


def wants(
    event_types: Sequence[str],
    agents: Sequence[str] | None,
    event_type: str,
    about: Sequence[str],
) -> bool:
    """Whether a webhook with these filters is sent an event about these agents (`concerned`);
    no `agents`: any agent or none."""
    if EVERY not in event_types and event_type not in event_types:
        return False
    return agents is None or not set(agents).isdisjoint(about)


# Work events: they change no prompt, so they affect no agent, but they concern the claim's
# holder and the directive's owner (both in the payload; events written before the owner was
# there name the holder alone).
_CLAIM_EVENTS = frozenset(
    {EventType.CLAIMED, EventType.CLAIM_EXPIRED, EventType.SUCCEEDED, EventType.FAILED}
)
_CLAIM_AGENTS = ("agent_id", "owner_agent_id")


def concerned(
    event_type: str, affected: Sequence[str], payload: Mapping[str, Any]
) -> Sequence[str]:
    """The agents an event is about, for an `agents` filter: its affected agents, and for a
    claim's events the holder and the directive's owner."""
    if event_type not in _CLAIM_EVENTS:
        return affected
    named = [payload.get(field) for field in _CLAIM_AGENTS]
    return [*affected, *(agent for agent in named if isinstance(agent, str))]


def target(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a webhook URL, or BadTarget."""
    if len(url) > MAX_URL or not url.isascii() or not url.isprintable() or " " in url:
        raise BadTarget(f"a webhook url is at most {MAX_URL} printable ASCII characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BadTarget("the webhook url does not parse") from exc
    if parts.scheme not in ("http", "https"):
        raise BadTarget("a webhook url is http or https")
    if not parts.hostname:
        raise BadTarget("a webhook url names a host")
    if parts.username is not None or parts.password is not None:
        raise BadTarget("a webhook url carries no credentials (the signature authenticates)")
    if parts.fragment:
        raise BadTarget("a webhook url has no fragment")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def refusal(address: Address) -> str | None:
    """Why a webhook may not reach `address` (private, loopback, …), or None if it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_unspecified:
        return "unspecified"
    if address.is_private or address.is_reserved or not address.is_global:
        return "private"
    return None


def backoff(failures: int, horizon_seconds: float, jitter: float) -> float:
    """Seconds to wait after `failures` (≥ 1) failures in a row: doubling from half a second,
    at most an hour (or an eighth of the retry horizon, if less); `jitter` in [0, 1) spreads
    it over its upper half, so receivers that come back are not hit by every sender at once."""
    cap = min(BACKOFF_CAP_SECONDS, horizon_seconds / 8)
    step = min(cap, BACKOFF_BASE_SECONDS * 2.0 ** min(failures - 1, 40))
    return step * (0.5 + jitter / 2)
