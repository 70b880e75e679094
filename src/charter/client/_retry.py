"""Which failures are worth another try and how long to wait; stamina runs the attempts.

The clients raise `Retryable` for a response worth another try inside a stamina attempt;
`RetryPolicy.backoff` tells stamina whether to retry an exception and, when the server said
`Retry-After` (429, 503), to wait that long instead of its exponential backoff with jitter.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from typing import TypedDict

import httpx
import msgspec

from charter.client import errors
from charter.client.models import Problem

# Worth another try: the server is briefly unable (503, 502/504 from a proxy), rate-limited
# (429), or still running the first attempt of this same idempotent write (409 key-in-use).
# Writes carry one Idempotency-Key over all their attempts, so a retry never repeats one.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
RETRY_AFTER_STATUSES = frozenset({429, 503})
_problem = msgspec.json.Decoder(Problem)


class Retryable(Exception):
    """A response worth another try; `response` is kept for when the tries run out."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


class StaminaOptions(TypedDict):
    attempts: int | None
    timeout: float | None
    wait_initial: float
    wait_max: float
    wait_jitter: float


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter; `attempts` counts the first try.

    The n-th wait is `base_delay * 2**(n-1)` plus up to `base_delay` of jitter, at most
    `max_delay`; a `Retry-After` on a 429 or 503 replaces it, also capped at `max_delay`.
    """

    attempts: int = 4
    base_delay: float = 0.2
    max_delay: float = 3.0

    def options(self) -> StaminaOptions:
        """For one call: `attempts` tries at most."""
        return self._options(self.attempts)

    def reconnect_options(self) -> StaminaOptions:
        """For (re)connecting a stream: as many tries as it takes."""
        return self._options(None)

    def _options(self, attempts: int | None) -> StaminaOptions:
        return StaminaOptions(
            attempts=attempts,
            timeout=None,  # bounded by `attempts` and `max_delay` instead
            wait_initial=self.base_delay,
            wait_max=self.max_delay,
            wait_jitter=self.base_delay,
        )

    def backoff(self, exc: Exception) -> bool | float:
        """stamina's backoff hook: retry connection failures and retryable responses."""
        if isinstance(exc, httpx.TransportError):
            return True
        if not isinstance(exc, Retryable):
            return False
        wait = retry_after(exc.response)
        return True if wait is None else min(self.max_delay, wait)


def check(response: httpx.Response) -> httpx.Response:
    """The response, unless it is worth another try (`Retryable`)."""
    if is_retryable(response):
        raise Retryable(response)
    return response


def is_retryable(response: httpx.Response) -> bool:
    if response.status_code in RETRY_STATUSES:
        return True
    return response.status_code == 409 and problem_of(response).code == "idempotency-key-in-use"


def retry_after(response: httpx.Response) -> float | None:
    """The seconds a 429 or 503 asks the client to wait (delta-seconds or an HTTP date)."""
    value = response.headers.get("Retry-After")
    if value is None or response.status_code not in RETRY_AFTER_STATUSES:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None  # HTTP dates are GMT; one without a zone is not an HTTP date
    return max(0.0, when.timestamp() - time.time())


def problem_of(response: httpx.Response) -> Problem:
    """The response's problem document, or one made from its status if it has none."""
    try:
        return _problem.decode(response.content)
    except (msgspec.DecodeError, msgspec.ValidationError):
        code = {401: "unauthenticated", 403: "forbidden", 404: "not-found"}.get(
            response.status_code, "unavailable" if response.status_code >= 500 else "unknown"
        )
        return Problem(status=response.status_code, code=code, title=response.reason_phrase)


def raise_for_problem(response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise errors.for_problem(problem_of(response))
