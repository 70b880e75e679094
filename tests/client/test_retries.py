"""Retries (stamina): what is retried, how often, and that a server's Retry-After is waited.

A scripted HTTP server on loopback answers each request with the next of its planned
answers and notes when each arrived, so waits are measured between real requests. One test
runs against Charter's own rate limiter instead.
"""

from __future__ import annotations

import email.utils
import http.server
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import stamina.instrumentation

from charter.client import (
    AsyncCharter,
    Charter,
    IdempotencyKeyInUse,
    InvalidRequest,
    NewDirective,
    RateLimited,
    RetryPolicy,
    TransportError,
    Unavailable,
)
from charter.client._retry import Retryable
from charter.client.errors import ServerError
from charter.client.models import Problem
from tests.support.api import ADMIN_KEY
from tests.support.ports import free_port
from tests.support.servers import CharterServer

QUICK = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)
REALMS = b'{"items": [], "next_cursor": null}'


def _problem(status: int, code: str) -> bytes:
    return f'{{"type": "about:blank", "status": {status}, "code": "{code}"}}'.encode()


@dataclass
class Answer:
    status: int
    body: bytes = REALMS
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Arrival:
    at: float
    method: str
    idempotency_key: str | None


class ScriptedServer:
    """Answers requests, in order, with `plan`; then 200 with an empty page."""

    def __init__(self, *plan: Answer) -> None:
        self.plan = list(plan)
        self.arrivals: list[Arrival] = []
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                with server.lock:
                    server.arrivals.append(
                        Arrival(time.monotonic(), self.command, self.headers["Idempotency-Key"])
                    )
                    answer = server.plan.pop(0) if server.plan else Answer(200)
                self.send_response(answer.status)
                kind = "application/json" if answer.status < 400 else "application/problem+json"
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(answer.body)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def gaps(self) -> list[float]:
        return [b.at - a.at for a, b in zip(self.arrivals, self.arrivals[1:], strict=False)]


@pytest.fixture
def scripted() -> Iterator[type[ScriptedServer]]:
    started: list[ScriptedServer] = []

    class Started(ScriptedServer):
        def __init__(self, *plan: Answer) -> None:
            super().__init__(*plan)
            started.append(self)
            self.thread.start()

    yield Started
    for server in started:
        server.httpd.shutdown()
        server.httpd.server_close()


def test_retryable_statuses_are_retried_until_an_answer(
    scripted: type[ScriptedServer],
) -> None:
    server = scripted(Answer(503, _problem(503, "unavailable")), Answer(502), Answer(504))
    with Charter(server.url, retry=QUICK) as charter:
        assert charter.realms().items == []
    assert len(server.arrivals) == 4


def test_tries_run_out_and_the_last_problem_is_raised(scripted: type[ScriptedServer]) -> None:
    server = scripted(
        *[Answer(502, b"bad gateway")] * 3, Answer(429, _problem(429, "rate-limited"))
    )
    with Charter(server.url, retry=QUICK) as charter, pytest.raises(RateLimited):
        charter.realms()
    assert len(server.arrivals) == QUICK.attempts
    server.plan = [Answer(500, _problem(500, "internal"))]
    with Charter(server.url, retry=QUICK) as charter, pytest.raises(ServerError):
        charter.realms()  # a 500 is not retried
    assert len(server.arrivals) == QUICK.attempts + 1


def test_refusals_are_not_retried(scripted: type[ScriptedServer]) -> None:
    server = scripted(Answer(400, _problem(400, "invalid-request")))
    with Charter(server.url, retry=QUICK) as charter, pytest.raises(InvalidRequest):
        charter.realms()
    assert len(server.arrivals) == 1


def test_a_write_is_retried_under_one_idempotency_key(scripted: type[ScriptedServer]) -> None:
    in_use = Answer(409, _problem(409, "idempotency-key-in-use"))
    server = scripted(in_use, Answer(503, _problem(503, "unavailable")), in_use, in_use)
    new = NewDirective(level="realm", title="T", body="B")
    with Charter(server.url, realm="r", retry=QUICK) as charter:
        with pytest.raises(IdempotencyKeyInUse):
            charter.create(new)
        keys = {arrival.idempotency_key for arrival in server.arrivals}
        assert len(server.arrivals) == QUICK.attempts
        assert len(keys) == 1
        assert None not in keys


def test_retries_are_logged_without_directive_text(
    scripted: type[ScriptedServer], caplog: pytest.LogCaptureFixture
) -> None:
    secret = "Launch codes: 0000"
    unavailable = Answer(503, _problem(503, "unavailable"))
    server = scripted(*[unavailable] * QUICK.attempts)
    stamina.instrumentation.set_on_retry_hooks([stamina.instrumentation.LoggingOnRetryHook])
    try:
        with Charter(server.url, realm="r", retry=QUICK) as charter, pytest.raises(Unavailable):
            charter.create(NewDirective(level="realm", title=secret, body=secret))
    finally:
        stamina.instrumentation.set_on_retry_hooks(None)
    retries = [r for r in caplog.records if r.getMessage() == "stamina.retry_scheduled"]
    assert len(retries) == QUICK.attempts - 1
    for record in retries:
        assert secret not in repr(vars(record))
        assert "HTTP 503" in getattr(record, "stamina.caused_by")


def test_connection_failures_are_retried_then_raised() -> None:
    port = free_port()  # nothing listens there
    started = time.monotonic()
    with Charter(f"http://127.0.0.1:{port}", retry=QUICK) as charter, pytest.raises(TransportError):
        charter.realms()
    assert time.monotonic() - started < 5


def test_retry_after_is_waited_before_the_retry(scripted: type[ScriptedServer]) -> None:
    server = scripted(Answer(429, _problem(429, "rate-limited"), {"Retry-After": "1"}))
    patient = RetryPolicy(attempts=2, base_delay=0.01, max_delay=5.0)
    with Charter(server.url, retry=patient) as charter:
        assert charter.realms().items == []
    assert len(server.arrivals) == 2
    assert server.gaps()[0] >= 1.0  # not the 0.01 to 0.02 s of its backoff


async def test_the_async_client_waits_retry_after_too(scripted: type[ScriptedServer]) -> None:
    when = email.utils.formatdate(time.time() + 2, usegmt=True)  # an HTTP date, 1 to 2 s away
    server = scripted(Answer(503, _problem(503, "unavailable"), {"Retry-After": when}))
    patient = RetryPolicy(attempts=2, base_delay=0.01, max_delay=5.0)
    async with AsyncCharter(server.url, retry=patient) as charter:
        assert (await charter.realms()).items == []
    assert len(server.arrivals) == 2
    assert server.gaps()[0] >= 0.9


def test_retry_after_is_capped_at_max_delay(scripted: type[ScriptedServer]) -> None:
    limited = Answer(429, _problem(429, "rate-limited"), {"Retry-After": "30"})
    server = scripted(limited, limited)
    policy = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.2)
    with Charter(server.url, retry=policy) as charter, pytest.raises(RateLimited):
        charter.realms()
    assert 0.2 <= server.gaps()[0] < 5


def _answer(status: int, retry_after: str | None = None) -> Retryable:
    # As bytes off the wire: httpx decodes header values as Latin-1.
    headers = [] if retry_after is None else [(b"Retry-After", retry_after.encode())]
    return Retryable(httpx.Response(status, headers=headers))


@pytest.mark.parametrize(
    ("status", "header", "wait"),
    [
        (429, "2", 2.0),
        (503, "0", 0.0),
        (503, "120", 3.0),  # capped at max_delay
        (429, None, True),  # no header: stamina's own backoff
        (503, "soon", True),  # not a number nor an HTTP date
        (503, "-1", True),
        (503, "1.5", True),  # delta-seconds are whole
        (429, "\u00b2", True),  # a digit to str.isdigit, not to float()
        (503, "Wed, 21 Oct 2015 07:28:00", True),  # a date without its GMT
        (502, "2", True),  # Retry-After counts on 429 and 503 only
        (504, "2", True),
    ],
)
def test_the_wait_comes_from_retry_after(status: int, header: str | None, wait: object) -> None:
    assert RetryPolicy().backoff(_answer(status, header)) == wait


def test_a_retry_after_date_is_the_time_until_it() -> None:
    soon = email.utils.formatdate(time.time() + 2.5, usegmt=True)
    wait = RetryPolicy(max_delay=10).backoff(_answer(429, soon))
    assert isinstance(wait, float)
    assert 1.0 <= wait <= 2.5
    past = email.utils.formatdate(time.time() - 60, usegmt=True)
    assert RetryPolicy().backoff(_answer(503, past)) == 0.0


def test_only_connection_failures_and_retryable_answers_are_retried() -> None:
    policy = RetryPolicy()
    request = httpx.Request("GET", "http://127.0.0.1/")
    assert policy.backoff(httpx.ConnectError("refused", request=request)) is True
    assert policy.backoff(httpx.ReadTimeout("slow", request=request)) is True
    assert policy.backoff(ValueError("a bug")) is False
    problem = Problem(status=503, code="unavailable")
    assert policy.backoff(Unavailable(problem)) is False  # raised only once tries ran out


@pytest.fixture
def rate_limited(tmp_path: Path) -> Iterator[CharterServer]:
    """`charter serve` whose keys may send one request every two seconds."""
    with CharterServer.on_sqlite(tmp_path, rate_limit="0.5") as process:
        process.start()
        yield process


def test_charters_own_429_is_waited_out(rate_limited: CharterServer) -> None:
    sent: list[tuple[float, int, str | None]] = []
    inner = httpx.HTTPTransport()

    class Recording(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            started = time.monotonic()
            response = inner.handle_request(request)
            sent.append((started, response.status_code, response.headers.get("Retry-After")))
            return response

        def close(self) -> None:
            inner.close()

    once = RetryPolicy(attempts=1)
    patient = RetryPolicy(attempts=2, base_delay=0.01, max_delay=5.0)
    with Charter(rate_limited.url, ADMIN_KEY, retry=once) as hasty:
        hasty.realms()  # the bucket's one token
        with pytest.raises(RateLimited):
            hasty.realms()
    with Charter(rate_limited.url, ADMIN_KEY, retry=patient, transport=Recording()) as charter:
        charter.realms()
    (first, status, retry_after), (second, answered, _) = sent
    assert (status, answered) == (429, 200)
    assert retry_after is not None
    assert int(retry_after) >= 1
    assert second - first >= int(retry_after)
