"""Every Redis key and channel Charter uses, named in one place.

Each name starts with the deployment's prefix (`CHARTER_REDIS_PREFIX`, default `charter`), so
deployments can share one Redis (the db number does not separate pub/sub channels). Realm-
scoped names hash-tag the realm, `{prefix}:{<realm>}:…`, so on Redis Cluster one realm's keys
and its channel share a slot and one script call can touch many of its agents at once.
"""

from __future__ import annotations

from charter.settings import DEFAULT_REDIS_PREFIX

DEFAULT_PREFIX = DEFAULT_REDIS_PREFIX


def entry_key(realm: str, agent: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The agent's cached prompt (or its tombstone)."""
    return f"{prefix}:{{{realm}}}:prompt:{agent}"


def entry_pattern(prefix: str = DEFAULT_PREFIX) -> str:
    """Every prompt entry of this deployment, for SCAN."""
    return f"{prefix}:{{*}}:prompt:*"


def invalidation_channel(realm: str, prefix: str = DEFAULT_PREFIX) -> str:
    """Where a change in the realm is announced to every server process."""
    return f"{prefix}:{{{realm}}}:invalidations"


def invalidation_pattern(prefix: str = DEFAULT_PREFIX) -> str:
    """Every realm's invalidation channel of this deployment, for PSUBSCRIBE."""
    return f"{prefix}:{{*}}:invalidations"


def revocation_channel(prefix: str = DEFAULT_PREFIX) -> str:
    """Where revoked key ids are announced (keys span realms: no hash tag)."""
    return f"{prefix}:revocations"
