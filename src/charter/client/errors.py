"""Client exceptions: one class per problem code, grouped by what a caller can do about it."""

from __future__ import annotations

from charter.client.models import Problem


class CharterError(Exception):
    """Base of everything the client raises on purpose."""


class TransportError(CharterError):
    """The server could not be reached, or the connection failed, after every retry."""


class ProblemError(CharterError):
    """The server answered with a problem document; `code` is its stable problem code."""

    code = "unknown"

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail or problem.title or problem.code)
        self.problem = problem
        self.status = problem.status

    @property
    def detail(self) -> str | None:
        return self.problem.detail


class InvalidInput(ProblemError):
    """The request was refused as it stands (400, 413, 422, 428): fix it, do not retry it."""


class InvalidRequest(InvalidInput):
    code = "invalid-request"


class ContentTooLarge(InvalidInput):
    code = "content-too-large"


class PayloadTooLarge(InvalidInput):
    code = "payload-too-large"


class InvalidHierarchy(InvalidInput):
    code = "invalid-hierarchy"


class TargetRefused(InvalidInput):
    """A webhook URL whose host does not resolve, or resolves to a private address."""

    code = "target-refused"


class UndefinedVariable(InvalidInput):
    """The write would leave an affected agent's prompt with an undefined placeholder:
    `problem.variable`, `problem.agents` (the first 20) and `problem.count`."""

    code = "undefined-variable"


class IdempotencyKeyReused(InvalidInput):
    code = "idempotency-key-reused"


class PreconditionRequired(InvalidInput):
    code = "precondition-required"


class MethodNotAllowed(InvalidInput):
    code = "method-not-allowed"


class AuthError(ProblemError):
    """The key is missing, unknown, revoked, or lacks the right."""


class Unauthenticated(AuthError):
    code = "unauthenticated"


class Forbidden(AuthError):
    code = "forbidden"


class NotFound(ProblemError):
    code = "not-found"


class Conflict(ProblemError):
    """The state on the server does not allow this change now (409 / 412)."""


class StaleRevision(Conflict):
    code = "stale-revision"

    @property
    def current_revision(self) -> int | None:
        return self.problem.current_revision


class AlreadyExists(Conflict):
    code = "already-exists"


class CycleDetected(Conflict):
    code = "cycle-detected"


class InvalidTransition(Conflict):
    code = "invalid-transition"


class HasOpenChildren(Conflict):
    code = "has-open-children"


class IdempotencyKeyInUse(Conflict):
    code = "idempotency-key-in-use"


class RolloutInProgress(Conflict):
    """A rollback, or a rollout of another version, while a rollout runs."""

    code = "rollout-in-progress"


class AlreadyClaimed(Conflict):
    """Another claim on the directive is live: `problem.holder`, `problem.expires_at`."""

    code = "already-claimed"


class NotDue(Conflict):
    """The directive is paused or deactivated, or before its `not_before`
    (`problem.not_before`)."""

    code = "not-due"


class Unavailable(ProblemError):
    """The server is up but cannot serve now (503, 429, or a 5xx): retry later."""

    code = "unavailable"


class RateLimited(Unavailable):
    code = "rate-limited"


class ServerError(Unavailable):
    code = "internal"


_BY_CODE: dict[str, type[ProblemError]] = {
    cls.code: cls
    for cls in (
        InvalidRequest,
        ContentTooLarge,
        PayloadTooLarge,
        InvalidHierarchy,
        TargetRefused,
        UndefinedVariable,
        IdempotencyKeyReused,
        PreconditionRequired,
        MethodNotAllowed,
        Unauthenticated,
        Forbidden,
        NotFound,
        StaleRevision,
        AlreadyExists,
        CycleDetected,
        InvalidTransition,
        HasOpenChildren,
        IdempotencyKeyInUse,
        RolloutInProgress,
        AlreadyClaimed,
        NotDue,
        Unavailable,
        RateLimited,
        ServerError,
    )
}

_BY_STATUS: dict[int, type[ProblemError]] = {
    400: InvalidRequest,
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    412: StaleRevision,
    413: PayloadTooLarge,
    422: InvalidInput,
    428: PreconditionRequired,
    429: RateLimited,
    503: Unavailable,
}


def for_problem(problem: Problem) -> ProblemError:
    """The exception for a problem document: by code, else by status class."""
    cls = _BY_CODE.get(problem.code) or _BY_STATUS.get(problem.status)
    if cls is None:
        cls = ServerError if problem.status >= 500 else InvalidInput
    return cls(problem)
