"""One process's receiving end: drops local entries and wakes the readers that wait."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Protocol, TypeVar

from charter.cache.local import LocalTier
from charter.metrics import Metrics

K = TypeVar("K")


class Watch:
    """A waiting reader's doorbell; `wait` returns True when it rang, False on timeout."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def ring(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> bool:
        # A timeout scope, not wait_for: no task per wait, which thousands of held watchers
        # pay for in memory, and a herd of them in CPU when one change wakes them all.
        try:
            async with asyncio.timeout(seconds):
                await self._event.wait()
        except TimeoutError:
            return False
        self._event.clear()
        return True


class Keyring(Protocol):
    coherent: bool

    def revoke(self, key_id: str) -> None: ...

    def flush(self) -> None: ...


class Hub:
    def __init__(
        self, local: LocalTier, keyring: Keyring | None = None, metrics: Metrics | None = None
    ) -> None:
        self.local = local
        self.keyring = keyring
        self.metrics = metrics
        self._agents: dict[tuple[str, str], set[Watch]] = {}
        self._realms: dict[str, set[Watch]] = {}

    def set_coherent(self, coherent: bool) -> None:
        """Whether this process hears every change; process-local caches serve only if so."""
        self.local.enabled = coherent
        if self.keyring is not None:
            self.keyring.coherent = coherent

    def revoke_key(self, key_id: str) -> None:
        if self.keyring is not None:
            self.keyring.revoke(key_id)

    def drop_local(self, realm: str, agents: list[str], stamp: int) -> None:
        """Drop this process's entries older than `stamp`, waking no one (yet)."""
        self.local.invalidate(realm, agents, stamp)

    def deliver(self, realm: str, agents: Iterable[str], stamp: int) -> None:
        """A change committed at realm revision `stamp` affects `agents`."""
        agents = list(agents)
        self.local.invalidate(realm, agents, stamp)
        for agent in agents:
            for watch in self._agents.get((realm, agent), ()):
                watch.ring()
        for watch in self._realms.get(realm, ()):
            watch.ring()

    def flush(self) -> None:
        """Coherence was lost (the subscription dropped): forget everything, wake everyone."""
        self.local.flush()
        if self.keyring is not None:
            self.keyring.flush()
        for watches in (*self._agents.values(), *self._realms.values()):
            for watch in watches:
                watch.ring()

    @contextmanager
    def watch_agent(self, realm: str, agent: str, kind: str = "long_poll") -> Iterator[Watch]:
        """`kind` (long_poll, prompt_stream) labels the watcher gauge (docs/metrics.md)."""
        with self._counted(kind), _registered(self._agents, (realm, agent)) as watch:
            yield watch

    @contextmanager
    def watch_realm(self, realm: str, kind: str = "event_stream") -> Iterator[Watch]:
        with self._counted(kind), _registered(self._realms, realm) as watch:
            yield watch

    def _counted(self, kind: str) -> AbstractContextManager[None]:
        return nullcontext() if self.metrics is None else self.metrics.watching(kind)

    @property
    def watchers(self) -> int:
        return sum(map(len, self._agents.values())) + sum(map(len, self._realms.values()))


@contextmanager
def _registered(registry: dict[K, set[Watch]], key: K) -> Iterator[Watch]:
    watch = Watch()
    registry.setdefault(key, set()).add(watch)
    try:
        yield watch
    finally:
        watches = registry.get(key)
        if watches is not None:
            watches.discard(watch)
            if not watches:
                del registry[key]
