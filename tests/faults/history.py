"""What a fault run did, call by call, and the checks its history must pass. Pure: no I/O.

Every call is recorded with its start and end (one monotonic clock, in the test process) and
what came back. A write that got no answer (connection dropped, timeout) or a 503 may or may
not have committed (the commit may have landed just before the answer was lost): the checks
allow either, but never two winners for one expected revision.

Reads must see every write acknowledged before they began. Directive reads go to the
database, so that holds across processes; a composed prompt read from another process than
the one that acknowledged the write may lag by the time it takes that process to hear of it
(DESIGN §4: within a second), and the longest such lag seen is reported.

The event feed (DESIGN §7) is checked against the whole feed read once the run is over:
each resuming feed reader got every event up to its cursor exactly once, in seq order, as the
feed holds it (so none was skipped that committed after a higher-numbered one); along the
feed one directive's revisions never go back and `occurred_at` never decreases; every
acknowledged write has its event; and a prompt's `realm_revision` is at or past the event of
every layer it shows.
"""

from __future__ import annotations

import bisect
import itertools
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

CROSS_PROCESS_SECONDS = 1.0


class Outcome(StrEnum):
    OK = "ok"
    CONFLICT = "conflict"  # 412: refused, nothing written
    UNAVAILABLE = "unavailable"  # 503: for a write, committed or not
    INDETERMINATE = "indeterminate"  # no answer: for a write, committed or not
    FAILED = "failed"  # any other answer: always an anomaly


@dataclass(frozen=True, slots=True)
class Write:
    """PATCH with If-Match: `expected`, setting the body to `text` (unique in the run)."""

    server: str
    directive: str
    expected: int
    text: str
    start: float
    end: float
    outcome: Outcome
    status: int | None = None
    retry_after: str | None = None
    revision: int | None = None
    version: int | None = None


@dataclass(frozen=True, slots=True)
class Read:
    """GET of one directive: its revision, active version and that version's body."""

    server: str
    directive: str
    start: float
    end: float
    outcome: Outcome
    status: int | None = None
    retry_after: str | None = None
    revision: int = 0
    version: int | None = None
    text: str = ""


@dataclass(frozen=True, slots=True)
class Layer:
    directive: str
    version: int | None
    revision: int


@dataclass(frozen=True, slots=True)
class PromptRead:
    """GET of an agent's composed prompt."""

    server: str
    agent: str
    start: float
    end: float
    outcome: Outcome
    status: int | None = None
    retry_after: str | None = None
    layers: tuple[Layer, ...] = ()
    text: str = ""
    realm_revision: int | None = None


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One event as the feed shows it (`occurred_at` as sent, ISO 8601)."""

    seq: int
    type: str
    directive: str
    revision: int
    occurred_at: str


@dataclass(frozen=True, slots=True)
class FeedRead:
    """GET of the realm's events after `after`, by the feed reader `reader`."""

    server: str
    reader: str
    after: int
    start: float
    end: float
    outcome: Outcome
    status: int | None = None
    retry_after: str | None = None
    items: tuple[FeedItem, ...] = ()


Operation = Write | Read | PromptRead | FeedRead


@dataclass(frozen=True, slots=True)
class Final:
    """A directive as the API shows it once the run is over: every version's body."""

    directive: str
    latest_version: int
    active_version: int | None
    bodies: Mapping[int, str]


@dataclass(frozen=True, slots=True)
class Composition:
    composition_id: str
    text: str
    layers: tuple[Layer, ...]


@dataclass(frozen=True, slots=True)
class Anomaly:
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


@dataclass
class Verdict:
    operations: int
    anomalies: list[Anomaly] = field(default_factory=list)
    max_lag: float = 0.0  # the longest cross-process prompt lag, within the allowance
    uncertain: int = 0  # writes answered 503 or not at all
    uncertain_won: int = 0  # of those, how many committed all the same

    @property
    def kinds(self) -> set[str]:
        return {a.kind for a in self.anomalies}


def check(
    operations: Sequence[Operation],
    finals: Mapping[str, Final],
    chains: Mapping[str, frozenset[str]],
    allowance: float = CROSS_PROCESS_SECONDS,
    feed: Sequence[FeedItem] | None = None,
) -> Verdict:
    """Every check over one run; `chains` names the directives each agent's prompt holds;
    `feed` is the realm's whole feed once the run is over (the feed checks need it)."""
    writes = [op for op in operations if isinstance(op, Write)]
    verdict = Verdict(len(operations))
    verdict.anomalies += bad_answers(operations)
    verdict.anomalies += version_gaps(finals)
    verdict.anomalies += lost_writes(writes, finals)
    verdict.anomalies += double_wins(writes, finals)
    stale, verdict.max_lag = stale_reads(operations, finals, chains, allowance)
    verdict.anomalies += stale
    if feed is not None:
        verdict.anomalies += feed_anomalies(operations, feed)
    kept = {body for final in finals.values() for body in final.bodies.values()}
    unsure = [w for w in writes if w.outcome in (Outcome.UNAVAILABLE, Outcome.INDETERMINATE)]
    verdict.uncertain = len(unsure)
    verdict.uncertain_won = sum(w.text in kept for w in unsure)
    return verdict


def bad_answers(operations: Iterable[Operation]) -> list[Anomaly]:
    """Never a 500 nor any unexpected status; a 503 always says when to retry."""
    found = []
    for op in operations:
        if op.outcome is Outcome.FAILED:
            found.append(Anomaly("bad-status", f"{_name(op)} answered {op.status}"))
        elif op.outcome is Outcome.UNAVAILABLE and not op.retry_after:
            found.append(Anomaly("no-retry-after", f"{_name(op)} answered 503 without it"))
    return found


def version_gaps(finals: Mapping[str, Final]) -> list[Anomaly]:
    found = []
    for final in finals.values():
        expected = set(range(1, final.latest_version + 1))
        if set(final.bodies) != expected:
            missing = sorted(expected - set(final.bodies))
            extra = sorted(set(final.bodies) - expected)
            detail = f"{final.directive}: missing {missing}, beyond latest {extra}"
            found.append(Anomaly("version-gap", detail))
    return found


def lost_writes(writes: Iterable[Write], finals: Mapping[str, Final]) -> list[Anomaly]:
    """Every acknowledged write's version exists afterwards, holding the text it wrote."""
    found = []
    for w in writes:
        if w.outcome is not Outcome.OK:
            continue
        final = finals.get(w.directive)
        kept = None if final is None or w.version is None else final.bodies.get(w.version)
        if kept != w.text:
            detail = f"{w.directive} v{w.version} ({w.text!r}) holds {kept!r}"
            found.append(Anomaly("lost-write", detail))
    return found


def double_wins(writes: Sequence[Write], finals: Mapping[str, Final]) -> list[Anomaly]:
    """Each version after the first comes from exactly one write, and no two winners share
    an expected revision; a refused write never wins; a winner's revision is expected + 1."""
    found = []
    by_text: dict[str, Write] = {}
    for w in writes:
        if w.text in by_text:
            raise ValueError(f"the workload reused the text {w.text!r}")
        by_text[w.text] = w
        if w.outcome is Outcome.OK and w.revision != w.expected + 1:
            detail = f"{w.directive}: If-Match {w.expected} answered revision {w.revision}"
            found.append(Anomaly("double-win", detail))
    for final in finals.values():
        winners: dict[int, list[int]] = defaultdict(list)  # expected revision -> versions
        seen: dict[str, int] = {}
        for version, body in sorted(final.bodies.items()):
            if version == 1:
                continue  # the creation, not a write of the run
            if body in seen:
                detail = f"{final.directive}: v{seen[body]} and v{version} hold one write's text"
                found.append(Anomaly("double-win", detail))
            seen[body] = version
            winner = by_text.get(body)
            if winner is None or winner.directive != final.directive:
                detail = f"{final.directive} v{version} holds a text no write sent it"
                found.append(Anomaly("unknown-version", detail))
                continue
            if winner.outcome is Outcome.CONFLICT:
                detail = f"{final.directive} v{version}: a write refused with {winner.status} won"
                found.append(Anomaly("double-win", detail))
            winners[winner.expected].append(version)
        for expected, versions in sorted(winners.items()):
            if len(versions) > 1:
                detail = f"{final.directive}: If-Match {expected} won as versions {versions}"
                found.append(Anomaly("double-win", detail))
    return found


class _Acknowledged:
    """Acknowledged writes per (directive, server), ordered by when their answer arrived."""

    def __init__(self, writes: Iterable[Write]) -> None:
        groups: dict[tuple[str, str], list[Write]] = defaultdict(list)
        for w in writes:
            if w.outcome is Outcome.OK and w.revision is not None:
                groups[w.directive, w.server].append(w)
        self._ends: dict[tuple[str, str], list[float]] = {}
        self._newest: dict[tuple[str, str], list[Write]] = {}  # prefix maxima by revision
        self._servers: dict[str, list[str]] = defaultdict(list)
        self._all: dict[str, list[Write]] = defaultdict(list)
        for (directive, server), group in groups.items():
            group.sort(key=lambda w: w.end)
            self._ends[directive, server] = [w.end for w in group]
            newest, best = [], group[0]
            for w in group:
                best = w if (w.revision or 0) > (best.revision or 0) else best
                newest.append(best)
            self._newest[directive, server] = newest
            self._servers[directive].append(server)
            self._all[directive] += group

    def newest_before(self, directive: str, server: str, start: float, lag: float) -> int:
        """The highest revision acknowledged before `start` (before `start - lag` when the
        write went through another server than `server`)."""
        best = 0
        for other in self._servers.get(directive, ()):
            before = start if other == server else start - lag
            n = bisect.bisect_left(self._ends[directive, other], before)
            if n:
                best = max(best, self._newest[directive, other][n - 1].revision or 0)
        return best

    def missed_since(self, directive: str, revision: int, start: float) -> float:
        """How long before `start` the first acknowledged write past `revision` was answered."""
        ends = [w.end for w in self._all[directive] if (w.revision or 0) > revision]
        return start - min((end for end in ends if end < start), default=start)


def stale_reads(
    operations: Iterable[Operation],
    finals: Mapping[str, Final],
    chains: Mapping[str, frozenset[str]],
    allowance: float,
) -> tuple[list[Anomaly], float]:
    """No read older than a write acknowledged before it began; none of a version that does
    not exist afterwards, or with another text than that version's."""
    operations = list(operations)
    acked = _Acknowledged(op for op in operations if isinstance(op, Write))
    found: list[Anomaly] = []
    max_lag = 0.0
    for op in operations:
        if op.outcome is not Outcome.OK:
            continue
        if isinstance(op, Read):
            need = acked.newest_before(op.directive, op.server, op.start, 0.0)
            if op.revision < need:
                detail = f"{_name(op)} saw revision {op.revision} after {need} was acknowledged"
                found.append(Anomaly("stale-read", detail))
            found += _phantom(op, op.directive, op.version, finals, op.text, exact=True)
        elif isinstance(op, PromptRead):
            layered = frozenset(layer.directive for layer in op.layers)
            if layered != chains.get(op.agent):
                found.append(Anomaly("wrong-layers", f"{_name(op)} layered {sorted(layered)}"))
            for layer in op.layers:
                if layer.directive not in finals:
                    continue
                need = acked.newest_before(layer.directive, op.server, op.start, allowance)
                if layer.revision < need:
                    detail = (
                        f"{_name(op)} layered {layer.directive} at revision {layer.revision} "
                        f"after {need} was acknowledged"
                    )
                    found.append(Anomaly("stale-read", detail))
                elif layer.revision < acked.newest_before(
                    layer.directive, op.server, op.start, 0.0
                ):
                    lag = acked.missed_since(layer.directive, layer.revision, op.start)
                    max_lag = max(max_lag, lag)
                found += _phantom(op, layer.directive, layer.version, finals, op.text, exact=False)
    return found, max_lag


def _phantom(
    op: Operation,
    directive: str,
    version: int | None,
    finals: Mapping[str, Final],
    text: str,
    *,
    exact: bool,
) -> list[Anomaly]:
    final = finals.get(directive)
    if final is None or version is None:
        return []
    body = final.bodies.get(version)
    if body is None:
        detail = f"{_name(op)} saw {directive} v{version}, which does not exist afterwards"
        return [Anomaly("phantom-read", detail)]
    if (text != body) if exact else (body not in text):
        detail = f"{_name(op)}: {directive} v{version}'s text is not what it served"
        return [Anomaly("phantom-read", detail)]
    return []


def stale_compositions(
    served: Mapping[tuple[str, str], Composition],
    fresh: Mapping[str, Composition],
    finals: Mapping[str, Final],
) -> list[Anomaly]:
    """After recovery every server serves each agent what a fresh composition gives, and
    that composition layers every directive at its active version, with its text."""
    found = []
    for (server, agent), composition in sorted(served.items()):
        if composition != fresh.get(agent):
            found.append(Anomaly("stale-cache", f"{server} serves {agent} a stale composition"))
    for agent, composition in sorted(fresh.items()):
        for layer in composition.layers:
            final = finals.get(layer.directive)
            if final is None:
                continue
            body = final.bodies.get(final.active_version or 0, "")
            if layer.version != final.active_version or body not in composition.text:
                detail = f"{agent}'s fresh composition layers {layer.directive} v{layer.version}"
                found.append(Anomaly("stale-cache", detail))
    return found


def feed_anomalies(operations: Sequence[Operation], feed: Sequence[FeedItem]) -> list[Anomaly]:
    """Every feed check of DESIGN §7 over the run's feed reads and the final feed."""
    found = feed_shape(feed)
    found += resumed_reads(operations, feed)
    found += acknowledged_events(operations, feed)
    found += composition_cursors(operations, feed)
    return found


def feed_shape(feed: Sequence[FeedItem]) -> list[Anomaly]:
    """Seqs rise; one directive's revisions never go back; times never go back."""
    found = []
    last: dict[str, int] = {}
    for before, after in itertools.pairwise(feed):
        if after.seq <= before.seq:
            found.append(Anomaly("feed-order", f"seq {after.seq} follows {before.seq}"))
        if _when(after) < _when(before):
            detail = f"seq {after.seq} at {after.occurred_at} follows {before.occurred_at}"
            found.append(Anomaly("feed-time", detail))
    for item in feed:
        if item.revision < last.get(item.directive, 0):
            detail = f"{item.directive} revision {item.revision} after {last[item.directive]}"
            found.append(Anomaly("feed-directive-order", f"seq {item.seq}: {detail}"))
        last[item.directive] = max(last.get(item.directive, 0), item.revision)
    return found


def resumed_reads(operations: Iterable[Operation], feed: Sequence[FeedItem]) -> list[Anomaly]:
    """Each reader, resuming from the cursor its last page ended at, got exactly the feed's
    events up to its final cursor: none twice, none skipped, none the feed does not hold."""
    found = []
    by_reader: dict[str, list[FeedRead]] = defaultdict(list)
    for op in operations:
        if isinstance(op, FeedRead) and op.outcome is Outcome.OK:
            by_reader[op.reader].append(op)
    for reader, reads in sorted(by_reader.items()):
        reads.sort(key=lambda r: r.start)
        got = [item for r in reads for item in r.items]
        first = reads[0].after
        cursor = max([first, *(item.seq for item in got)])
        counts: dict[int, int] = defaultdict(int)
        for item in got:
            counts[item.seq] += 1
        twice = sorted(seq for seq, n in counts.items() if n > 1)
        if twice:
            found.append(Anomaly("feed-duplicate", f"{reader} got seqs {twice[:10]} twice"))
        expected = [item for item in feed if first < item.seq <= cursor]
        skipped = sorted({item.seq for item in expected} - set(counts))
        if skipped:
            found.append(Anomaly("feed-skip", f"{reader} never got seqs {skipped[:10]}"))
        held = {item.seq: item for item in feed}
        for item in got:
            if held.get(item.seq) != item:
                detail = f"{reader} got seq {item.seq} as {item}, the feed holds another"
                found.append(Anomaly("feed-phantom", detail))
    return found


def acknowledged_events(operations: Iterable[Operation], feed: Sequence[FeedItem]) -> list[Anomaly]:
    """Every acknowledged write has exactly one event, at the revision it answered."""
    found = []
    events: dict[tuple[str, int], int] = defaultdict(int)
    for item in feed:
        events[item.directive, item.revision] += 1
    for op in operations:
        if isinstance(op, Write) and op.outcome is Outcome.OK and op.revision is not None:
            n = events.get((op.directive, op.revision), 0)
            if n != 1:
                detail = f"{op.directive} revision {op.revision} has {n} events"
                found.append(Anomaly("feed-event", detail))
    return found


def composition_cursors(operations: Iterable[Operation], feed: Sequence[FeedItem]) -> list[Anomaly]:
    """A prompt's realm revision is at or past the event of every layer it reflects."""
    found = []
    at = {(item.directive, item.revision): item.seq for item in feed}
    for op in operations:
        if not isinstance(op, PromptRead) or op.outcome is not Outcome.OK:
            continue
        if op.realm_revision is None:
            continue
        for layer in op.layers:
            seq = at.get((layer.directive, layer.revision))
            if seq is not None and seq > op.realm_revision:
                detail = (
                    f"{_name(op)} at realm revision {op.realm_revision} layered "
                    f"{layer.directive} revision {layer.revision} (seq {seq})"
                )
                found.append(Anomaly("cursor-behind", detail))
    return found


def _when(item: FeedItem) -> datetime:
    return datetime.fromisoformat(item.occurred_at)


def _name(op: Operation) -> str:
    if isinstance(op, FeedRead):
        return f"FeedRead by {op.reader} on {op.server} at {op.start:.3f}"
    subject = op.agent if isinstance(op, PromptRead) else op.directive
    return f"{type(op).__name__} of {subject} on {op.server} at {op.start:.3f}"
