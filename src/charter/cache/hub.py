"""One process's receiving end: drops local entries and wakes the readers that wait."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Protocol, TypeVar

from charter.cache.entries import Entry
from charter.cache.holds import Holds
from charter.cache.local import LocalTier
from charter.cache.watch import Ending, Watch
from charter.metrics import Metrics

__all__ = ["Ending", "Hub", "Watch"]

K = TypeVar("K")


class Keyring(Protocol):
    coherent: bool

    def revoke(self, key_id: str) -> None: ...

    def flush(self) -> None: ...


class Hub:
    def __init__(
        self,
        local: LocalTier,
        keyring: Keyring | None = None,
        holds: Holds | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.local = local
        self.keyring = keyring
        self.holds = holds if holds is not None else Holds()
        self.metrics = metrics
        self._agents: dict[tuple[str, str], set[Watch]] = {}
        self._realms: dict[str, set[Watch]] = {}
        # Rung on every change in any realm: the webhook deliverer's doorbell.
        self.bells: set[Watch] = set()
        # Agents whose new entries are being made from their old ones after the change of
        # that stamp (services/refresh.py): `deliver` does not ring them, so their watchers
        # do not all query while the entries are on their way; `ring` does once each is
        # stored, and the change's own delivery rings the rest.
        self._making: dict[tuple[str, str], int] = {}

    def set_coherent(self, coherent: bool) -> None:
        """Whether this process hears every change; process-local caches serve only if so."""
        self.local.enabled = coherent
        if self.keyring is not None:
            self.keyring.coherent = coherent

    def revoke_key(self, key_id: str) -> None:
        """The key is revoked: forget it, and end its open streams and long polls."""
        if self.keyring is not None:
            self.keyring.revoke(key_id)
        self.holds.revoke(key_id)

    def drop_local(self, realm: str, agents: list[str], stamp: int) -> None:
        """Drop this process's entries older than `stamp`, waking no one (yet)."""
        self.local.invalidate(realm, agents, stamp)

    def deliver(self, realm: str, agents: Iterable[str], stamp: int) -> None:
        """A change committed at realm revision `stamp` affects `agents`."""
        agents = list(agents)
        self.local.invalidate(realm, agents, stamp)
        making = self._making
        for agent in agents:
            if making and (realm, agent) in making:
                continue
            for watch in self._agents.get((realm, agent), ()):
                watch.ring()
        for watch in self._realms.get(realm, ()):
            watch.ring()
        for watch in self.bells:
            watch.ring()

    def realm_heard(self, realm: str) -> None:
        """The realm's changes are heard from now on (its subscription is confirmed): wake its
        waiters, who may have missed a change before, and refuse reads begun before now."""
        self.local.forget(set())
        self._ring_realms({realm})

    def realms_unheard(self, realms: set[str]) -> None:
        """These realms' changes may go unheard for a while (their subscription dropped or
        moved): forget their entries, and wake their waiters to read afresh."""
        self.local.forget(realms)
        self._ring_realms(realms)

    def watched_realms(self) -> set[str]:
        """Realms with a waiter in this process."""
        return {realm for realm, _ in self._agents} | set(self._realms)

    def _ring_realms(self, realms: set[str]) -> None:
        if not realms:
            return
        for (realm, _), watches in self._agents.items():
            if realm in realms:
                for watch in watches:
                    watch.ring()
        for realm in realms:
            for watch in self._realms.get(realm, ()):
                watch.ring()

    def entries(self, realm: str, agents: Iterable[str]) -> dict[str, Entry]:
        """This process's current entries of `agents` (before a change drops them)."""
        found: dict[str, Entry] = {}
        for agent in agents:
            entry = self.local.get((realm, agent))
            if entry is not None:
                found[agent] = entry
        return found

    def making(self, realm: str, agents: Iterable[str], stamp: int) -> None:
        """New entries of `agents` are being made after the change at `stamp`: until `made`,
        deliveries do not ring their watchers."""
        for agent in agents:
            self._making[(realm, agent)] = stamp

    def made(self, realm: str, agents: Iterable[str], stamp: int) -> None:
        """Deliveries ring these agents' watchers again (unless a later change is making
        theirs)."""
        for agent in agents:
            key = (realm, agent)
            if self._making.get(key) == stamp:
                del self._making[key]

    def ring(self, realm: str, agents: Iterable[str]) -> None:
        """Wake the agents' own watchers (their entries are already current)."""
        for agent in agents:
            for watch in self._agents.get((realm, agent), ()):
                watch.ring()

    def flush(self) -> None:
        """Coherence was lost (the subscription dropped): forget everything, wake everyone."""
        self.local.flush()
        if self.keyring is not None:
            self.keyring.flush()
        for watches in (*self._agents.values(), *self._realms.values(), self.bells):
            for watch in watches:
                watch.ring()

    @contextmanager
    def watch_agent(
        self, realm: str, agent: str, watch: Watch | None = None, kind: str = "long_poll"
    ) -> Iterator[Watch]:
        """`watch` (a new one if None) rings on every change to the agent's prompt; `kind`
        (long_poll, prompt_stream) labels the watcher gauge (docs/metrics.md)."""
        self._hear(realm)
        with self.counted(kind), _registered(self._agents, (realm, agent), watch) as registered:
            yield registered

    @contextmanager
    def watch_realm(self, realm: str, watch: Watch | None = None) -> Iterator[Watch]:
        """`watch` (a new one if None) rings on every change in the realm: the shared
        event-feed reader, and waits for claimable work."""
        self._hear(realm)
        with _registered(self._realms, realm, watch) as registered:
            yield registered

    def _hear(self, realm: str) -> None:
        # A waiter needs the realm's changes heard, cached entries or not.
        if self.local.gate is not None:
            self.local.gate.open(realm)

    def counted(self, kind: str) -> AbstractContextManager[None]:
        """Count one open watcher of `kind` while the block runs."""
        return nullcontext() if self.metrics is None else self.metrics.watching(kind)

    @property
    def watchers(self) -> int:
        """Open streams and long polls."""
        return len(self.holds)


@contextmanager
def _registered(registry: dict[K, set[Watch]], key: K, watch: Watch | None) -> Iterator[Watch]:
    if watch is None:
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
