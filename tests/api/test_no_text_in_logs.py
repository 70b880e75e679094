"""Directive text never reaches a log line, an event or an error, on any path.

Every endpoint is driven with a marker in every text field (titles, bodies, messages,
metadata, names, messages to inject), successfully and unsuccessfully, while every logger
records at DEBUG and stdout and stderr are captured. The marker may come back only in the
successful answers that are meant to carry the text.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from httpx import Response
from litestar import Litestar
from litestar.testing import AsyncTestClient

from charter.observability.logs import JsonFormatter
from charter.services import reads, writes
from tests.support.api import ADMIN_KEY, new_realm_id
from tests.support.streams import open_stream

MARKER = "zq-TEXT-MARKER-5c1e"
MAX_BODY_BYTES = 32_768
MAX_REQUEST_BYTES = 256 * 1024
MAX_INJECT_BYTES = 4 * 1024 * 1024  # inject's own limit
JSON = {"Content-Type": "application/json"}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def marked(what: str) -> str:
    return f"{MARKER} {what}"


class Logs:
    """Every record of every logger at DEBUG, and whatever reaches stdout or stderr; formatted
    as text, or as the JSON lines of CHARTER_LOG_FORMAT=json."""

    def __init__(
        self,
        caplog: pytest.LogCaptureFixture,
        capfd: pytest.CaptureFixture[str],
        log_format: str = "text",
    ):
        self.caplog = caplog
        self.capfd = capfd
        self.log_format = log_format
        self.quiet: list[logging.Logger] = []

    def start(self) -> None:
        if self.log_format == "json":
            self.caplog.handler.setFormatter(JsonFormatter())
        self.caplog.set_level(logging.DEBUG)
        for name, logger in list(logging.root.manager.loggerDict.items()):
            if not isinstance(logger, logging.Logger):
                continue
            self.caplog.set_level(logging.DEBUG, logger=name)
            if not logger.propagate:  # its records would never reach the root's handler
                logger.addHandler(self.caplog.handler)
                self.quiet.append(logger)

    def stop(self) -> None:
        for logger in self.quiet:
            logger.removeHandler(self.caplog.handler)

    def assert_clean(self) -> None:
        records = self.caplog.get_records("setup") + self.caplog.get_records("call")
        assert records, "nothing was logged at all: is the capture working?"
        for record in records:
            for text in (
                record.getMessage(),
                repr(record.args),
                repr(vars(record)),
                self.caplog.handler.format(record),
            ):
                assert MARKER not in text, f"{record.name}: {text[:500]}"
        assert MARKER not in self.caplog.text
        if self.log_format == "json":
            self.assert_json_lines(records)
        out, err = self.capfd.readouterr()
        assert MARKER not in out
        assert MARKER not in err

    def assert_json_lines(self, records: list[logging.LogRecord]) -> None:
        """One JSON object per line; what a request logs carries its request id."""
        access = 0
        for record in records:
            line = self.caplog.handler.format(record)
            assert "\n" not in line, line[:500]
            entry = json.loads(line)
            assert isinstance(entry, dict)
            assert entry["message"] == record.getMessage()
            assert entry["logger"] == record.name
            if record.name == "charter.access":
                access += 1
                assert re.fullmatch(r"[0-9a-f]{16}", entry["request_id"]), entry
                assert entry["route"].startswith("/"), entry
                assert isinstance(entry["status"], int)
        assert access, "no access line was logged"


@pytest.fixture(params=["text", "json"])
def logs(
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> Iterator[Logs]:
    watcher = Logs(caplog, capfd, request.param)
    watcher.start()
    yield watcher
    watcher.stop()


class Driver:
    """The requests of one realm; every refused answer is checked for the marker on arrival."""

    def __init__(self, client: AsyncTestClient[Litestar], realm_id: str) -> None:
        self.client = client
        self.realm = realm_id
        self.root = f"/v1/realms/{realm_id}"
        self.base = f"{self.root}/directives"

    async def call(
        self, method: str, url: str, expect: int, body: Any = None, **kw: Any
    ) -> Response:
        if isinstance(body, bytes):
            headers = {**JSON, **kw.pop("headers", {})}
            response = await self.client.request(method, url, content=body, headers=headers, **kw)
        elif body is not None:
            response = await self.client.request(method, url, json=body, **kw)
        else:
            response = await self.client.request(method, url, **kw)
        assert response.status_code == expect, (method, url, response.status_code, response.text)
        if expect >= 400:
            assert response.headers["content-type"].startswith("application/problem+json")
            assert MARKER not in response.text, (method, url, response.text)
            assert MARKER not in json.dumps(dict(response.headers)), (method, url)
        return response

    async def ok(self, method: str, url: str, body: Any = None, **kw: Any) -> dict[str, Any]:
        expect = {"POST": 201 if url.endswith("/directives") else 200, "DELETE": 204}
        response = await self.call(method, url, expect.get(method, 200), body, **kw)
        return response.json() if response.content else {}

    async def create(self, **fields: Any) -> dict[str, Any]:
        body = {"level": "realm", "title": marked("title"), "body": marked("body"), **fields}
        return await self.ok("POST", self.base, body)

    def node(self, node: dict[str, Any], suffix: str = "") -> str:
        return f"{self.base}/{node['id']}{suffix}"

    async def patch(self, node: dict[str, Any], **fields: Any) -> dict[str, Any]:
        url = self.node(node)
        return await self.ok("PATCH", url, fields, headers={"If-Match": f'"{node["revision"]}"'})


async def _tree(d: Driver) -> dict[str, dict[str, Any]]:
    metadata = {"note": marked("metadata"), "nested": {"list": [marked("deep")]}}
    root = await d.create(
        key="root",
        owner_agent_id="lead",
        metadata=metadata,
        message=marked("why create"),
    )
    team = await d.create(
        level="team", parent_id=root["id"], key="team", owner_agent_id="team-lead"
    )
    agent = await d.create(
        level="agent",
        parent_id=team["id"],
        owner_agent_id="worker",
        injection_mode="user_prepend",
    )
    return {"root": root, "team": team, "agent": agent}


async def test_the_successful_paths_log_no_text(
    client: AsyncTestClient[Litestar], logs: Logs
) -> None:
    realm_id = new_realm_id()
    d = Driver(client, realm_id)
    await d.call("POST", "/v1/realms", 201, {"id": realm_id, "name": marked("realm")})
    await d.ok("GET", "/v1/realms")
    await d.ok("GET", d.root)
    key = await d.call(
        "POST", "/v1/keys", 201, {"role": "reader", "realms": [realm_id], "name": marked("key")}
    )
    await d.ok("GET", "/v1/keys")

    nodes = await _tree(d)
    root = nodes["root"]
    root = await d.patch(root, body=marked("second body"), message=marked("why patch"))
    root = await d.patch(root, title=marked("new title"), metadata={"n": marked("meta")})
    root = await d.patch(root, title=root["title"])  # no change: no version, no event
    root = await d.patch(root, priority="high", injection_mode="system_append")
    root = await d.patch(root, status="paused", message=marked("why pause"))
    root = await d.patch(root, status="active", message=marked("why resume"))
    rolled = await d.ok(
        "POST",
        d.node(root, "/rollback"),
        {"version": 1, "expected_revision": root["revision"], "message": marked("why back")},
    )
    for suffix in ("", "/versions", "/versions/1", "/diff?from=1&to=3", "/history"):
        await d.ok("GET", d.node(root, suffix))
    for suffix in ("/ancestry", "/tree"):
        await d.ok("GET", d.node(nodes["agent"], suffix))
    await d.ok("GET", f"{d.root}/tree")
    await d.ok("GET", d.base)
    await d.ok("GET", f"{d.base}?owner_agent_id=lead&key=root")
    await d.ok("GET", f"{d.root}/agents")

    agents = f"{d.root}/agents"
    for agent in ("lead", "worker"):
        prompt = await d.ok("GET", f"{agents}/{agent}/prompt")
        assert MARKER in prompt["text"]  # the text is there to be served, only not logged
        etag = {"If-None-Match": f'"{prompt["composition_id"]}"'}
        await d.call("GET", f"{agents}/{agent}/prompt", 304, headers=etag)
        await d.call("GET", f"{agents}/{agent}/prompt?wait=1", 304, headers=etag)
        await d.ok("GET", f"{d.root}/compositions/{prompt['composition_id']}")
        messages = [
            {"role": "system", "content": marked("system message")},
            {"role": "user", "content": marked("user message")},
            {"role": "assistant", "content": [{"type": "text", "text": marked("part")}]},
        ]
        await d.ok("POST", f"{agents}/{agent}/inject", {"messages": messages})
        keyed = {"Idempotency-Key": f"inject-{agent}"}
        await d.ok("POST", f"{agents}/{agent}/inject", {"messages": messages}, headers=keyed)
        await d.ok("POST", f"{agents}/{agent}/inject", {"messages": messages}, headers=keyed)
        streamed = await open_stream(client, f"{agents}/{agent}/prompt/stream", ADMIN)
        assert streamed.status == 200
        assert MARKER in streamed.body.decode()
    streamed = await open_stream(client, f"{d.root}/events/stream?after=0", ADMIN)
    assert streamed.status == 200

    idempotent = {"Idempotency-Key": "create-once"}
    body = {"level": "realm", "title": marked("keyed"), "body": marked("keyed body")}
    first = await d.call("POST", d.base, 201, body, headers=idempotent)
    again = await d.call("POST", d.base, 201, body, headers=idempotent)
    assert again.json() == first.json()
    moved = await d.patch(nodes["agent"], parent_id=root["id"], message=marked("why move"))
    await d.call(
        "DELETE",
        d.node(moved),
        204,
        {"expected_revision": moved["revision"], "message": marked("why deactivate")},
    )
    completed = await d.patch(
        await d.ok("GET", d.node(rolled)),
        status="completed",
        cascade=True,
        message=marked("why complete"),
    )
    assert completed["status"] == "completed"
    await d.call("DELETE", f"/v1/keys/{key.json()['id']}", 204)

    feed = await d.ok("GET", f"{d.root}/events?limit=500")
    assert len(feed["items"]) > 10
    assert MARKER not in json.dumps(feed)
    assert MARKER not in streamed.body.decode()
    logs.assert_clean()


def _oversized_request(limit: int = MAX_REQUEST_BYTES) -> bytes:
    head, tail = b'{"level": "realm", "title": "t", "body": "', b'"}'
    room = limit + 1 - len(head) - len(tail)
    filler = (MARKER.encode() * (room // len(MARKER) + 1))[:room]
    return head + filler + tail


async def test_the_refused_paths_log_no_text(client: AsyncTestClient[Litestar], logs: Logs) -> None:
    realm_id = new_realm_id()
    d = Driver(client, realm_id)
    await d.call("POST", "/v1/realms", 201, {"id": realm_id})
    nodes = await _tree(d)
    root = await d.patch(nodes["root"], body=marked("second"))
    node, cas = d.node(root), {"If-Match": f'"{root["revision"]}"'}
    good = {"level": "realm", "title": marked("t"), "body": marked("b")}

    # Validation errors whose offending value is the marker.
    bad_creates: list[Any] = [
        {**good, "title": marked("two\nlines")},
        {**good, "title": [MARKER]},
        {**good, "body": {"text": MARKER}},
        {**good, "titel": MARKER},
        {**good, "level": MARKER},
        {**good, "status": MARKER},
        {**good, "priority": MARKER},
        {**good, "injection_mode": MARKER},
        {**good, "owner_agent_id": marked("not an agent id")},
        {**good, "key": marked("not a key")},
        {**good, "parent_id": MARKER},
        {**good, "title": f"{MARKER}\x00"},
        {**good, "body": f"{MARKER}\x00"},
        {**good, "message": f"{MARKER}\x00"},
        {**good, "message": [MARKER]},
        {**good, "metadata": {"charter.reserved": MARKER}},
        {**good, "metadata": {"k": f"{MARKER}\x00"}},
        {**good, "metadata": {"k": MARKER * 1000}},
        {**good, "metadata": MARKER},
        {**good, "title": MARKER * 100},
        {**good, "title": ""},
        [MARKER],
        MARKER,
    ]
    for body in bad_creates:
        await d.call("POST", d.base, 400, body)
    raw_bodies = [
        b'{"level": "realm", "title": "' + MARKER.encode(),
        b'{"level": "realm", "title": "' + MARKER.encode() + b'\xff\xfe"}',
        b"{'title': '" + MARKER.encode() + b"'}",
        b'{"title": "' + MARKER.encode() + b'"} trailing ' + MARKER.encode(),
        b'{"metadata": {"a": ' + b"[" * 20_000 + MARKER.encode() + b"]" * 20_000 + b"}}",
    ]
    for raw in raw_bodies:
        await d.call("POST", d.base, 400, raw)
        await d.call("PATCH", node, 400, raw, headers=cas)
    content = MARKER + "x" * (MAX_BODY_BYTES + 1 - len(MARKER))
    problem = await d.call("POST", d.base, 400, {**good, "body": content})
    assert problem.json()["code"] == "content-too-large"
    await d.call("PATCH", node, 400, {"body": content}, headers=cas)
    await d.call("POST", d.base, 413, _oversized_request())
    await d.call("PATCH", node, 413, _oversized_request(), headers=cas)

    # Patches refused for what they say, not how: each carries the marker in its text.
    text = {"title": marked("new"), "body": marked("new body"), "message": marked("why")}
    await d.call("PATCH", node, 428, text)
    await d.call("PATCH", node, 412, text, headers={"If-Match": '"999"'})
    await d.call("PATCH", node, 409, {**text, "expected_revision": 999})
    await d.call("PATCH", node, 400, {**text, "titel": MARKER}, headers=cas)
    await d.call("PATCH", node, 400, {**text, "metadata": {"charter.x": MARKER}}, headers=cas)
    await d.call("PATCH", node, 409, {**text, "status": "completed"}, headers=cas)
    team, first = d.node(nodes["team"]), {"If-Match": '"1"'}
    await d.call("PATCH", team, 409, {**text, "parent_id": nodes["agent"]["id"]}, headers=first)
    await d.call("PATCH", team, 422, {**text, "parent_id": None}, headers=first)
    await d.call("POST", d.base, 422, {**good, "level": "team"})
    await d.call("POST", d.base, 422, {**good, "level": "team", "parent_id": nodes["agent"]["id"]})
    await d.call(
        "POST", d.node(root, "/rollback"), 404, {"version": 9, "message": marked("m")}, headers=cas
    )
    await d.call(
        "POST",
        d.node(root, "/rollback"),
        412,
        {"version": 1, "message": marked("m")},
        headers={"If-Match": '"999"'},
    )
    await d.call("DELETE", node, 409, {"expected_revision": 999, "message": marked("why")})
    await d.call("DELETE", node, 400, {"message": [MARKER]}, headers=cas)

    # The same Idempotency-Key with another body; and a key naming the marker, malformed.
    keyed = {"Idempotency-Key": "only-once"}
    await d.call("POST", d.base, 201, good, headers=keyed)
    reused = await d.call("POST", d.base, 422, {**good, "body": marked("other")}, headers=keyed)
    assert reused.json()["code"] == "idempotency-key-reused"
    await d.call("POST", d.base, 400, good, headers={"Idempotency-Key": MARKER * 20})

    # Inject with messages that cannot be messages.
    inject = f"{d.root}/agents/lead/inject"
    for messages in (
        [{"content": marked("no role")}],
        [{"role": ["user"], "content": MARKER}],
        MARKER,
        [MARKER],
        {"role": "user", "content": MARKER},
    ):
        await d.call("POST", inject, 400, {"messages": messages})
    await d.call("POST", inject, 400, {"messages": [], "extra": MARKER})
    await d.call(
        "POST",
        f"{d.root}/agents/nobody/inject",
        404,
        {"messages": [{"role": "user", "content": marked("to an agent that owns nothing")}]},
    )
    await d.call("POST", inject, 413, _oversized_request(MAX_INJECT_BYTES))

    # Realms and keys refused, with the marker in their names.
    await d.call("POST", "/v1/realms", 400, {"id": realm_id, "name": marked("nul\x00")})
    await d.call("POST", "/v1/realms", 409, {"id": realm_id, "name": marked("taken")})
    await d.call("POST", "/v1/keys", 400, {"role": "reader", "realms": [MARKER]})
    await d.call("POST", "/v1/keys", 400, {"role": MARKER, "realms": ["*"]})
    await d.call("POST", "/v1/keys", 400, {"role": "agent", "realms": ["*"], "name": marked("n")})

    feed = await d.ok("GET", f"{d.root}/events?limit=500")
    assert MARKER not in json.dumps(feed)
    logs.assert_clean()


async def test_an_unexpected_error_logs_no_text(
    client: AsyncTestClient[Litestar], logs: Logs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug whose exception message carries directive text: a bare 500, logged by type."""
    realm_id = new_realm_id()
    d = Driver(client, realm_id)
    await d.call("POST", "/v1/realms", 201, {"id": realm_id})
    root = await d.create(owner_agent_id="lead")

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"bug while handling {MARKER}: {args!r}")

    monkeypatch.setattr(writes, "update", broken)
    monkeypatch.setattr(writes, "create", broken)
    monkeypatch.setattr(reads, "diff", broken)
    answers = [
        await d.call(
            "PATCH",
            d.node(root),
            500,
            {"body": marked("body"), "message": marked("why")},
            headers={"If-Match": '"1"'},
        ),
        await d.call("POST", d.base, 500, {"level": "realm", "title": MARKER, "body": MARKER}),
        await d.call("GET", d.node(root, "/diff?from=1&to=1"), 500),
    ]
    for answer in answers:
        assert answer.json()["code"] == "internal"
    assert any(r.levelno >= logging.ERROR for r in logs.caplog.records), "the 500 went unlogged"
    monkeypatch.undo()
    assert (await d.ok("GET", d.node(root)))["revision"] == 1  # the broken write left no trace
    feed = await d.ok("GET", f"{d.root}/events?limit=500")
    assert MARKER not in json.dumps(feed)
    logs.assert_clean()


async def test_the_release_and_work_routes_log_no_text(
    client: AsyncTestClient[Litestar], logs: Logs
) -> None:
    """Drafts, rollouts, outcomes, schedules, claims and the other inject formats: the marker
    in every text field and message, on the paths that take it and the paths that refuse it."""
    realm_id = new_realm_id()
    d = Driver(client, realm_id)
    await d.call("POST", "/v1/realms", 201, {"id": realm_id})
    nodes = await _tree(d)
    team = nodes["team"]
    draft = await d.patch(team, body=marked("draft"), activate=False, message=marked("why"))
    rollout = d.node(draft, "/rollout")
    cas = {"If-Match": f'"{draft["revision"]}"'}
    for refused, status in (
        ({"version": 9, "percent": 10, "message": marked("m")}, 404),
        ({"version": 2, "percent": 10.001, "message": marked("m")}, 400),
        ({"version": 2, "percent": 10, "message": [MARKER]}, 400),
        ({"version": 2, "percent": 10, "agents": [marked("not an agent")]}, 400),
        ({"version": 2, "percent": 10, "guard": {"metric": MARKER}}, 400),
    ):
        await d.call("PUT", rollout, status, refused, headers=cas)
    body = {"version": 2, "percent": 50, "agents": ["worker"], "message": marked("why roll")}
    started = await d.ok("PUT", rollout, body, headers=cas)
    await d.call("PUT", rollout, 412, body, headers=cas)
    prompt = await d.ok("GET", f"{d.root}/agents/worker/prompt")
    assert MARKER in prompt["text"]
    outcome = {"composition_id": prompt["composition_id"], "agent_id": "worker", "metric": "m"}
    await d.call("POST", f"{d.root}/outcomes", 202, {**outcome, "value": 1})
    await d.call("POST", f"{d.root}/outcomes", 400, {**outcome, "value": MARKER})
    await d.ok("GET", rollout)

    schedules = d.node(started, "/schedules")
    for action in ({"status": MARKER}, {MARKER: 1}, {"activate": MARKER}, {"rollout": MARKER}):
        await d.call("POST", schedules, 400, {"at": "2030-01-01T00:00:00Z", "action": action})
    pending = await d.call(
        "POST", schedules, 201, {"at": "2030-01-01T00:00:00Z", "action": {"promote": True}}
    )
    await d.ok("GET", schedules)
    await d.call("DELETE", f"{schedules}/{pending.json()['id']}", 200)
    started_cas = {"If-Match": f'"{started["revision"]}"'}
    promoted = await d.ok(
        "POST", f"{rollout}/promote", {"message": marked("why promote")}, headers=started_cas
    )
    promoted_cas = {"If-Match": f'"{promoted["revision"]}"'}
    await d.call("DELETE", rollout, 404, {"message": marked("why abort")}, headers=promoted_cas)

    work = d.node(nodes["agent"], "/claims")
    claim = await d.call("POST", work, 201, {"agent_id": "worker", "lease_seconds": 60})
    claim_url = f"{work}/{claim.json()['id']}"
    await d.call("POST", work, 409, {"agent_id": "worker", "lease_seconds": 60})
    await d.call(
        "POST", f"{claim_url}/finish", 400, {"outcome": "failed", "error_code": marked("code")}
    )
    await d.ok("POST", f"{claim_url}/heartbeat")
    await d.ok("POST", f"{claim_url}/finish", {"outcome": "failed", "error_code": "flaky"})
    await d.ok("GET", f"{d.root}/claims?agent_id=worker")

    inject = f"{d.root}/agents/worker/inject"
    responses = {"format": "openai-responses", "input": marked("input")}
    injected = await d.ok("POST", inject, {**responses, "instructions": marked("instr")})
    assert MARKER in json.dumps(injected)
    said = [{"role": "user", "content": marked("hello")}]
    await d.ok("POST", inject, {"format": "anthropic", "system": marked("sys"), "messages": said})
    refused_injects: list[dict[str, Any]] = [
        {"format": "anthropic", "input": marked("wrong field"), "messages": said},
        {"format": "openai-responses", "input": 5, "instructions": marked("instr")},
        {"format": "anthropic", "system": [MARKER], "messages": said},
        {"format": MARKER, "messages": said},
    ]
    for refused_inject in refused_injects:
        await d.call("POST", inject, 400, refused_inject)

    feed = await d.ok("GET", f"{d.root}/events?limit=500")
    assert promoted["revision"] > started["revision"]
    assert len(feed["items"]) > 8
    assert MARKER not in json.dumps(feed)
    logs.assert_clean()


async def _mcp_call(
    client: AsyncTestClient[Litestar], url: str, headers: dict[str, str], method: str, **kw: Any
) -> str:
    message = {"jsonrpc": "2.0", "id": 1, "method": method, "params": kw}
    response = await client.post(url, json=message, headers=headers)
    assert response.status_code == 200, response.text
    return response.text


async def test_mcp_logs_no_text(client: AsyncTestClient[Litestar], logs: Logs) -> None:
    """What MCP answers carries the text (a prompt, a directive); no log line does, at DEBUG
    either (the SSE library logs every chunk it sends)."""
    realm_id = new_realm_id()
    d = Driver(client, realm_id)
    await d.call("POST", "/v1/realms", 201, {"id": realm_id})
    nodes = await _tree(d)
    url = f"/mcp?realm={realm_id}&agent=worker"
    headers = {**ADMIN, **JSON, "Accept": "application/json, text/event-stream"}
    hello = {"name": "test", "version": "1"}
    opened = await client.post(
        url,
        json={
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": hello},
        },
        headers=headers,
    )
    assert opened.status_code == 200, opened.text
    headers |= {
        "mcp-session-id": opened.headers["mcp-session-id"],
        "mcp-protocol-version": "2025-11-25",
    }
    ready = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await client.post(url, json=ready, headers=headers)).status_code == 202
    assert MARKER in await _mcp_call(client, url, headers, "prompts/get", name="directives")
    node = nodes["agent"]
    got = await _mcp_call(
        client, url, headers, "tools/call", name="get_directive", arguments={"id": node["id"]}
    )
    assert MARKER in got
    for arguments in (
        {"id": node["id"], "expected_revision": 9, "body": marked("stale")},
        {"id": node["id"], "expected_revision": 1, "title": [MARKER]},
        {"id": node["id"], "expected_revision": 1, "title": marked("two\nlines")},
    ):
        refused = await _mcp_call(
            client, url, headers, "tools/call", name="update_directive", arguments=arguments
        )
        assert '"isError":true' in refused
        assert MARKER not in refused
    logs.assert_clean()
