"""Talking to `charter serve` processes over real sockets: a realm's requests, metrics, cache
envelopes and server-sent events."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

_ENVELOPE = re.compile(rb"c1\|(\d+)\|(cmp_[0-9a-f]{64}|-)\|")


def envelope(raw: bytes | None) -> tuple[int, str] | None:
    """A cache value's (stamp, composition id or "-" for a tombstone), or None if unreadable."""
    head = _ENVELOPE.match(raw or b"")
    return None if head is None else (int(head.group(1)), head.group(2).decode())


class LiveApi:
    """Request helpers for one realm on one server, so tests read as the behaviour they check."""

    def __init__(self, http: httpx.AsyncClient, realm_id: str) -> None:
        self.http = http
        self.realm = realm_id
        self.base = f"/v1/realms/{realm_id}"

    def on(self, http: httpx.AsyncClient) -> LiveApi:
        """The same realm through another server."""
        return LiveApi(http, self.realm)

    async def create_realm(self) -> None:
        response = await self.http.post("/v1/realms", json={"id": self.realm})
        assert response.status_code == 201, response.text

    async def create(self, **fields: Any) -> dict[str, Any]:
        body = {"level": "realm", "title": "Title", "body": "Body", **fields}
        response = await self.http.post(f"{self.base}/directives", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def patch(self, node: dict[str, Any], **fields: Any) -> dict[str, Any]:
        response = await self.http.patch(
            f"{self.base}/directives/{node['id']}",
            json=fields,
            headers={"If-Match": f'"{node["revision"]}"'},
        )
        assert response.status_code == 200, response.text
        patched: dict[str, Any] = response.json()
        return patched

    async def prompt(self, agent: str) -> dict[str, Any]:
        response = await self.http.get(f"{self.base}/agents/{agent}/prompt")
        assert response.status_code == 200, response.text
        assert response.headers["etag"] == f'"{response.json()["composition_id"]}"'
        document: dict[str, Any] = response.json()
        return document

    async def revision(self) -> int:
        response = await self.http.get(self.base)
        assert response.status_code == 200, response.text
        revision: int = response.json()["revision"]
        return revision


def open_watchers(exposition: str) -> int:
    """Open streams and long polls, all kinds summed, from a /metrics text."""
    samples = (line.rpartition(" ") for line in exposition.splitlines())
    return int(sum(float(v) for name, _, v in samples if name.startswith("charter_watchers{")))


async def metrics(http: httpx.AsyncClient) -> dict[str, float]:
    """The server's /metrics samples by name (labels included), e.g. `charter_watchers`."""
    response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    samples = (line.rpartition(" ") for line in response.text.splitlines() if line[:1] != "#")
    return {name: float(value) for name, _, value in samples if name}


@dataclass(frozen=True)
class Event:
    event: str | None
    id: str | None
    data: list[str]


async def sse_events(lines: AsyncIterator[str]) -> AsyncGenerator[Event, None]:
    """Events in arrival order; comments (heartbeats) are skipped."""
    fields: dict[str, list[str]] = {}
    async for line in lines:
        if not line:
            if fields:
                ids, names = fields.get("id", []), fields.get("event", [])
                yield Event(
                    names[-1] if names else None, ids[-1] if ids else None, fields.get("data", [])
                )
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value.removeprefix(" "))
