"""Composed-prompt caching, invalidation and change notification.

Two tiers: a process-local dict (always) and Redis (when `CHARTER_REDIS_URL` is set). Every
entry is stamped with the realm revision its composition was read at; every invalidation
carries the revision of the change. A tier refuses to store an entry older than an
invalidation it has seen, so a slow reader can never put back a prompt that a committed change
has made stale. See docs/cache.md.
"""
