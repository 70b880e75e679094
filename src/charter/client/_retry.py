"""When and how long to wait before sending a request again."""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx
import msgspec

from charter.client import errors
from charter.client.models import Problem

# Worth another try: the server is briefly unable (503, 502/504 from a proxy), rate-limited
# (429), or still running the first attempt of this same idempotent write (409 key-in-use).
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
_problem = msgspec.json.Decoder(Problem)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded exponential backoff with full jitter; `attempts` counts the first try."""

    attempts: int = 4
    base_delay: float = 0.2
    max_delay: float = 3.0

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        ceiling = min(self.max_delay, self.base_delay * (2**retry))
        jittered = random.uniform(0, ceiling)  # jitter, not a secret
        if retry_after is not None:
            return min(self.max_delay, max(retry_after, jittered))
        return jittered


def problem_of(response: httpx.Response) -> Problem:
    """The response's problem document, or one made from its status if it has none."""
    try:
        return _problem.decode(response.content)
    except (msgspec.DecodeError, msgspec.ValidationError):
        code = {401: "unauthenticated", 403: "forbidden", 404: "not-found"}.get(
            response.status_code, "unavailable" if response.status_code >= 500 else "unknown"
        )
        return Problem(status=response.status_code, code=code, title=response.reason_phrase)


def is_retryable(response: httpx.Response) -> bool:
    if response.status_code in _RETRY_STATUSES:
        return True
    return response.status_code == 409 and _code(response) == "idempotency-key-in-use"


def _code(response: httpx.Response) -> str:
    return problem_of(response).code


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def raise_for_problem(response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise errors.for_problem(problem_of(response))
