"""Domain errors. They know nothing of HTTP: `charter.api.problems` maps them to responses."""

from __future__ import annotations

from typing import Any


class CharterError(Exception):
    """Base of every expected failure; `code` is the stable problem code."""

    code = "invalid-request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class InvalidRequest(CharterError):
    code = "invalid-request"


class ContentTooLarge(CharterError):
    code = "content-too-large"


class BodyTimeout(CharterError):
    """The request body did not arrive within the configured time (api/edges.py)."""

    code = "request-timeout"


class NotFound(CharterError):
    code = "not-found"


class AlreadyExists(CharterError):
    code = "already-exists"


class StaleRevision(CharterError):
    """The expected revision is not the current one; nothing was written."""

    code = "stale-revision"

    def __init__(self, current_revision: int, *, via_header: bool) -> None:
        super().__init__(
            f"expected revision is stale; current revision is {current_revision}",
            current_revision=current_revision,
            etag=f'"{current_revision}"',
        )
        self.current_revision = current_revision
        self.via_header = via_header


class PreconditionRequired(CharterError):
    code = "precondition-required"


class CycleDetected(CharterError):
    code = "cycle-detected"


class InvalidTransition(CharterError):
    code = "invalid-transition"


class HasOpenChildren(CharterError):
    code = "has-open-children"


class InvalidHierarchy(CharterError):
    code = "invalid-hierarchy"


class Unavailable(CharterError):
    code = "unavailable"


class Unauthenticated(CharterError):
    code = "unauthenticated"


class Forbidden(CharterError):
    code = "forbidden"


class RateLimited(CharterError):
    code = "rate-limited"

    def __init__(
        self, retry_after: float, detail: str = "too many requests for this key; slow down"
    ) -> None:
        super().__init__(detail)
        self.retry_after = max(1, int(retry_after + 0.999))


class IdempotencyKeyInUse(CharterError):
    code = "idempotency-key-in-use"


class IdempotencyKeyReused(CharterError):
    code = "idempotency-key-reused"


class RolloutInProgress(CharterError):
    """A rollback, or a rollout of another version, while a rollout runs (DESIGN §8)."""

    code = "rollout-in-progress"


class TargetRefused(CharterError):
    """A webhook URL whose host resolves to an address webhooks may not reach (or to none)."""

    code = "target-refused"


class AlreadyClaimed(CharterError):
    """The directive has a live claim (its holder and expiry are in the problem)."""

    code = "already-claimed"


class NotDue(CharterError):
    """The directive may not be claimed now: paused, deactivated, or before its `not_before`."""

    code = "not-due"


class UndefinedVariable(CharterError):
    """A write after which some affected agent's prompt would hold a placeholder that no value
    defines (DESIGN §9); nothing was written."""

    code = "undefined-variable"

    def __init__(self, variable: str, agents: list[str], count: int) -> None:
        super().__init__(
            f"{{{{{variable}}}}} would be undefined in the prompt of {count} agent(s)",
            variable=variable,
            agents=agents,
            count=count,
        )
