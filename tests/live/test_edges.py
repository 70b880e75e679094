"""The HTTP edge of a real `charter serve` (granian), over raw sockets (DESIGN §12, issue 11).

- Bodies trickling 1 byte at a time stayed open for as long as the client liked: now the body
  must arrive within CHARTER_BODY_TIMEOUT_SECONDS (1 s here), else 408 and the connection ends.
- 7 of 20 oversized requests sent back to back got a disconnect instead of their 413: the
  server closed with the body unread, and the kernel reset the connection. Now the rest of the
  body is drained, the 413 says `Connection: close`, and the connection closes cleanly.
- A path holding `%0A[ERROR] forged` wrote a forged line into the app log, and the access log
  wrote NUL bytes and newlines as they came: one request now makes one log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import msgspec
import pytest

from tests.support.live import LiveApi
from tests.support.servers import CharterServer, StartServer

pytestmark = pytest.mark.timeout(90)

BODY_TIMEOUT_SECONDS = 1.0
OVER = 300_000  # over the 256 KiB request limit, by less than the server drains
TRICKLERS = 20
OVERSIZED = 20
READ_SECONDS = 15.0  # generous: the machine is shared


@pytest.fixture(scope="module")
async def server(start_server: StartServer) -> CharterServer:
    env = {"CHARTER_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT_SECONDS)}
    return await start_server(extra_env=env, args=["--access-log"])


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    closed_cleanly: bool  # EOF after the answer, not a reset


def _address(server: CharterServer) -> tuple[str, int]:
    parts = urlsplit(server.url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


def _head(method: str, path: str, server: CharterServer, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {server.key}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _read_answer(reader: asyncio.StreamReader) -> Answer:
    """One response; then, if it says `Connection: close`, the end of the stream."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    closed_cleanly = False
    if headers.get("connection") == "close":
        with contextlib.suppress(ConnectionResetError):
            closed_cleanly = await reader.read() == b""
    return Answer(int(status_line.split()[1]), headers, body, closed_cleanly)


async def _trickle(
    server: CharterServer, realm: str, method: str = "POST", path: str = "/directives"
) -> tuple[Answer, float]:
    """A request whose body comes 1 byte every 0.25 s: it would take 25 s to arrive."""
    reader, writer = await asyncio.open_connection(*_address(server))
    started = time.monotonic()
    headers = {"Content-Type": "application/json", "Content-Length": "100"}
    writer.write(_head(method, f"/v1/realms/{realm}{path}", server, headers))
    await writer.drain()

    async def drip() -> None:
        for _ in range(100):
            await asyncio.sleep(0.25)
            writer.write(b" ")
            await writer.drain()

    dripping = asyncio.create_task(drip())
    try:
        answer = await asyncio.wait_for(_read_answer(reader), READ_SECONDS)
        return answer, time.monotonic() - started
    finally:
        dripping.cancel()
        await asyncio.gather(dripping, return_exceptions=True)
        writer.close()


async def test_a_trickled_body_times_out_with_408(server: CharterServer, realm_id: str) -> None:
    async with server.http() as http:
        api = LiveApi(http, realm_id)
        await api.create_realm()
        results = await asyncio.gather(*(_trickle(server, realm_id) for _ in range(TRICKLERS)))
        for answer, seconds in results:
            assert answer.status == 408, answer
            assert answer.headers["connection"] == "close"
            assert answer.headers["content-type"] == "application/problem+json"
            assert msgspec.json.decode(answer.body)["code"] == "request-timeout"
            assert answer.closed_cleanly
            assert BODY_TIMEOUT_SECONDS <= seconds < READ_SECONDS
        listed = await http.get(f"/v1/realms/{realm_id}/directives")
        assert listed.json()["items"] == []


async def test_the_fast_path_meets_the_same_body_timeout(
    server: CharterServer, realm_id: str
) -> None:
    """A cached prompt read is answered before routing; with a body still coming, it waits for
    the body as the routed answer does, and closes the connection the same way."""
    async with server.http() as http:
        api = LiveApi(http, realm_id)
        await api.create_realm()
        await api.create(owner_agent_id="pilot")
        await api.prompt("pilot")  # cached: the next plain read is a fast one
    fast, routed = await asyncio.gather(
        _trickle(server, realm_id, "GET", "/agents/pilot/prompt"),
        _trickle(server, realm_id, "GET", "/agents/pilot/prompt?via=router"),
    )
    for answer, seconds in (fast, routed):
        assert answer.status == 200, answer
        assert answer.headers["connection"] == "close"
        assert answer.closed_cleanly
        assert BODY_TIMEOUT_SECONDS <= seconds < READ_SECONDS
    # Each answer has a request id of its own (X-Request-Id); all else is the same.
    for answer, _ in (fast, routed):
        assert answer.headers.pop("x-request-id")
        del answer.headers["date"]
    assert fast[0].headers == routed[0].headers
    assert fast[0].body == routed[0].body


async def test_oversized_requests_back_to_back_each_get_413_and_a_clean_close(
    server: CharterServer, realm_id: str
) -> None:
    body = b'{"level": "realm", "title": "T", "body": "' + b"x" * OVER + b'"}'
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    request = _head("POST", f"/v1/realms/{realm_id}/directives", server, headers) + body
    answers: list[Answer | str] = []
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    for _ in range(OVERSIZED):  # one keep-alive connection for as long as the server keeps it
        if connection is None:
            connection = await asyncio.open_connection(*_address(server))
        reader, writer = connection
        answer: Answer | None = None
        try:
            writer.write(request)
            await writer.drain()
            answer = await asyncio.wait_for(_read_answer(reader), READ_SECONDS)
            answers.append(answer)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            answers.append(type(exc).__name__)
        await asyncio.sleep(0.01)  # as a client would, between requests
        if answer is None or answer.headers.get("connection") == "close":
            writer.close()
            connection = None
    if connection is not None:
        connection[1].close()
    assert all(isinstance(a, Answer) for a in answers), answers
    done = [a for a in answers if isinstance(a, Answer)]
    assert [a.status for a in done] == [413] * OVERSIZED
    assert all(a.headers.get("connection") == "close" for a in done), done
    assert all(a.closed_cleanly for a in done), done
    assert all(msgspec.json.decode(a.body)["code"] == "payload-too-large" for a in done)


async def _log_text(server: CharterServer, marker: str, count: int) -> str:
    """The server's log once `count` lines mention the marker (bounded wait)."""
    deadline = time.monotonic() + READ_SECONDS
    while True:
        text = server.log.read_bytes().decode("utf-8", errors="replace")
        if text.count(marker) >= count or time.monotonic() > deadline:
            return text
        await asyncio.sleep(0.05)


async def test_one_request_makes_one_log_line(server: CharterServer, realm_id: str) -> None:
    marker = uuid.uuid4().hex
    forged = f"%0A[ERROR]%20forged-{marker}%00%0D%E2%80%A8tail"
    async with server.http() as http:
        # The access log line (granian's) and, for the undecodable body, Charter's own warning.
        assert (await http.get(f"/v1/realms/{forged}/directives")).status_code == 400
        response = await http.post(
            f"/v1/realms/x{forged}/directives",
            content=b"[" * 20_000 + b"]" * 20_000,  # too deep to decode: logged by type
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 400
    text = await _log_text(server, marker, 3)
    mentions = [line for line in text.splitlines() if marker in line]
    assert len(mentions) == 3, mentions  # two access lines, one warning
    assert all("\\x0a[ERROR] forged-" in line for line in mentions), mentions
    assert all("\\x00\\x0d\\u2028tail" in line for line in mentions), mentions
    assert not any(line.startswith("[ERROR] forged") for line in text.splitlines())
    assert "\x00" not in text
    assert any("undecodable" in line for line in mentions), mentions


async def test_an_encoded_slash_is_refused_under_granian(
    server: CharterServer, realm_id: str
) -> None:
    """granian hands the app the raw path too (`raw_path`): that is what the check reads."""
    async with server.http() as http:
        await LiveApi(http, realm_id).create_realm()
        assert (await http.get(f"/v1/realms/{realm_id}/directives")).status_code == 200
        response = await http.get(f"/v1/realms/{realm_id}%2Fdirectives")
        assert response.status_code == 400
        assert response.json()["code"] == "invalid-request"
        assert "%2F" in response.json()["detail"]
