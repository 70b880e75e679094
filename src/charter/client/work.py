"""Holding a claim while working: heartbeats in the background, a finish on the way out.

    with Holding(charter, directive_id, "agent-7") as work:
        ...                       # heartbeats keep the lease alive meanwhile
        work.result = {"rows": 3}  # optional: sent with the finish
    # finished `succeeded`; an exception finishes `failed` (error_code: its class) and is raised

`AsyncHolding` is the same for `AsyncCharter`, with `async with`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from types import TracebackType
from typing import Any

from charter.client import models as m
from charter.client.aio import AsyncCharter
from charter.client.errors import CharterError
from charter.client.sync import Charter

_CODE = re.compile(r"[^A-Za-z0-9._:-]")


def _error_code(exc: BaseException) -> str:
    return _CODE.sub("", type(exc).__name__)[:128] or "exception"


class _Held:
    def __init__(self, directive_id: str, lease_seconds: int, every: float | None) -> None:
        self.directive_id = directive_id
        self.lease_seconds = lease_seconds
        # A third of the lease: two beats may be lost before it runs out.
        self.every = every if every is not None else lease_seconds / 3
        self.result: Any = None
        self._claim: m.Claim | None = None

    @property
    def claim(self) -> m.Claim:
        assert self._claim is not None, "the claim is made on entering the block"
        return self._claim


class Holding(_Held):
    """A claim held by `agent` for the block's duration (the sync client)."""

    def __init__(
        self,
        client: Charter,
        directive_id: str,
        agent: str,
        *,
        lease_seconds: int = 60,
        every: float | None = None,
        realm: str | None = None,
    ) -> None:
        super().__init__(directive_id, lease_seconds, every)
        self.client, self.agent, self.realm = client, agent, realm
        self._stop = threading.Event()
        self._beats: threading.Thread | None = None

    def __enter__(self) -> Holding:
        self._claim = self.client.claim(
            self.directive_id, self.agent, lease_seconds=self.lease_seconds, realm=self.realm
        )
        self._beats = threading.Thread(target=self._beat, name="charter-heartbeat", daemon=True)
        self._beats.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            # A missed beat is retried at the next; the finish says whether the lease held.
            with contextlib.suppress(CharterError):
                self.client.heartbeat(self.directive_id, self.claim.id, realm=self.realm)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._beats is not None:
            self._beats.join()
        if exc is None:
            self.client.finish(
                self.directive_id, self.claim.id, "succeeded", result=self.result, realm=self.realm
            )
            return
        self.client.finish(
            self.directive_id,
            self.claim.id,
            "failed",
            result=self.result,
            error_code=_error_code(exc),
            realm=self.realm,
        )


class AsyncHolding(_Held):
    """A claim held by `agent` for the block's duration (the async client)."""

    def __init__(
        self,
        client: AsyncCharter,
        directive_id: str,
        agent: str,
        *,
        lease_seconds: int = 60,
        every: float | None = None,
        realm: str | None = None,
    ) -> None:
        super().__init__(directive_id, lease_seconds, every)
        self.client, self.agent, self.realm = client, agent, realm
        self._beats: asyncio.Task[None] | None = None

    async def __aenter__(self) -> AsyncHolding:
        self._claim = await self.client.claim(
            self.directive_id, self.agent, lease_seconds=self.lease_seconds, realm=self.realm
        )
        self._beats = asyncio.create_task(self._beat(), name="charter-heartbeat")
        return self

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            with contextlib.suppress(CharterError):
                await self.client.heartbeat(self.directive_id, self.claim.id, realm=self.realm)

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._beats is not None:
            self._beats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beats
        outcome: m.Outcome = "succeeded" if exc is None else "failed"
        code = None if exc is None else _error_code(exc)
        await self.client.finish(
            self.directive_id,
            self.claim.id,
            outcome,
            result=self.result,
            error_code=code,
            realm=self.realm,
        )
