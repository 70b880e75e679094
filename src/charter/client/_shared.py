"""What the async client and the sync client generated from it share: no I/O here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from charter.client import errors
from charter.client import models as m
from charter.client._calls import Call

Reapply = Callable[[m.Directive], m.Patch | None]
# Failures a local prompt copy covers (stale-if-error): the server is away or overwhelmed.
STALE_IF = (errors.TransportError, errors.Unavailable)

PROMPT = msgspec.json.Decoder(m.Prompt)
EVENT = msgspec.json.Decoder(m.Event)


def client_headers(key: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    headers = {"User-Agent": "charter-client/0.1", "Accept": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers | dict(extra or {})


def prepared(call: Call[Any], idempotency_key: str | None) -> dict[str, Any]:
    """Arguments for `httpx` `request`/`build_request`."""
    headers = dict(call.headers)
    if call.body is not None:
        headers.setdefault("Content-Type", "application/json")
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return {
        "method": call.method,
        "url": call.path,
        "params": call.params,
        "content": call.body,
        "headers": headers,
    }


def stream_headers(resume: str | None) -> dict[str, str]:
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
    if resume is not None:
        headers["Last-Event-ID"] = resume
    return headers


class Cursor:
    """Where a stream resumes: the id of the last event it handed on."""

    def __init__(self, value: str | None) -> None:
        self.value = value
