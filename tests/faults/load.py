"""The workload of a fault run: compare-and-swap writers and readers over a small goal tree.

Each writer reads a directive's revision, then PATCHes a body no one else writes with
`If-Match` on it; directive readers and prompt readers read meanwhile, and a feed reader per
server pages through the realm's events, resuming from its cursor after every failure. The
writers spread over the realm's directives, so their writes run in parallel (ADR 0006).
Every call lands in `Load.operations` (see history.py), whatever it answered or failed to.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from tests.faults.history import (
    Composition,
    FeedItem,
    FeedRead,
    Final,
    Layer,
    Operation,
    Outcome,
    PromptRead,
    Read,
    Write,
)

WRITERS_PER_SERVER = 3
READERS_PER_SERVER = 1
PROMPT_READERS_PER_SERVER = 2
FEED_READERS_PER_SERVER = 1
FEED_PAGE = 50
PAUSE = 0.004  # between one task's calls: enough load to race, not enough to starve
PAUSE_AFTER_FAILURE = 0.05
RETRIES = 5


@dataclass(frozen=True)
class Tree:
    """A realm, its directives by name, and the directives each agent's prompt layers."""

    realm: str
    directives: dict[str, str]
    chains: dict[str, frozenset[str]]

    @property
    def base(self) -> str:
        return f"/v1/realms/{self.realm}"


async def plant(http: httpx.AsyncClient, realm: str) -> Tree:
    """root ← team-a ← leaf, root ← team-b; each node owned by an agent of its own."""
    response = await http.post("/v1/realms", json={"id": realm})
    assert response.status_code == 201, response.text
    shape = [
        ("root", "realm", None, "lead"),
        ("team-a", "team", "root", "alpha"),
        ("team-b", "team", "root", "beta"),
        ("leaf", "agent", "team-a", "gamma"),
    ]
    ids: dict[str, str] = {}
    for name, level, parent, owner in shape:
        body: dict[str, str | None] = {"level": level, "title": name, "owner_agent_id": owner}
        body |= {"body": f"<<{name} created>>", "parent_id": ids[parent] if parent else None}
        response = await http.post(f"/v1/realms/{realm}/directives", json=body)
        assert response.status_code == 201, response.text
        ids[name] = response.json()["id"]
    chains = {
        "lead": frozenset({ids["root"]}),
        "alpha": frozenset({ids["root"], ids["team-a"]}),
        "beta": frozenset({ids["root"], ids["team-b"]}),
        "gamma": frozenset({ids["root"], ids["team-a"], ids["leaf"]}),
    }
    return Tree(realm, ids, chains)


def _outcome(response: httpx.Response | None) -> Outcome:
    # No answer, or a load balancer's 502/504 (the server went away, or did not answer, after
    # the request reached it): a write may or may not have committed.
    if response is None or response.status_code in (502, 504):
        return Outcome.INDETERMINATE
    return {200: Outcome.OK, 412: Outcome.CONFLICT, 503: Outcome.UNAVAILABLE}.get(
        response.status_code, Outcome.FAILED
    )


class Load:
    """Writers and readers on every server until `stop` is set; every call recorded."""

    def __init__(self, tree: Tree, clients: Mapping[str, httpx.AsyncClient], seed: int) -> None:
        self.tree = tree
        self.clients = clients
        self.seed = seed
        self.operations: list[Operation] = []
        self.writing: dict[str, int] = dict.fromkeys(clients, 0)
        self._texts = 0

    async def run(self, stop: asyncio.Event) -> None:
        # A task group: a bug in one task stops them all, and the error surfaces.
        async with asyncio.TaskGroup() as group:
            for s, server in enumerate(self.clients):
                seeds = (self.seed * 1000 + s * 100 + n for n in range(100))
                for _ in range(WRITERS_PER_SERVER):
                    group.create_task(self._writer(server, stop, random.Random(next(seeds))))
                for _ in range(READERS_PER_SERVER):
                    group.create_task(self._reader(server, stop, random.Random(next(seeds))))
                for _ in range(PROMPT_READERS_PER_SERVER):
                    rng = random.Random(next(seeds))
                    group.create_task(self._prompt_reader(server, stop, rng))
                for n in range(FEED_READERS_PER_SERVER):
                    group.create_task(self._feed_reader(server, f"{server}-feed-{n}", stop))

    async def until_writing(self, server: str, seconds: float = 5.0) -> None:
        """Returns while a PATCH through `server` is in flight (so a kill lands mid-write)."""
        deadline = time.monotonic() + seconds
        while self.writing[server] == 0:
            assert time.monotonic() < deadline, f"no write through {server} in {seconds} s"
            await asyncio.sleep(0)

    async def _call(
        self, server: str, method: str, url: str, **kwargs: Any
    ) -> tuple[float, float, httpx.Response | None]:
        start = time.monotonic()
        try:
            response: httpx.Response | None = await self.clients[server].request(
                method, url, **kwargs
            )
        except httpx.TransportError:
            response = None
        return start, time.monotonic(), response

    async def read(self, server: str, directive: str) -> Read:
        start, end, response = await self._call(
            server, "GET", f"{self.tree.base}/directives/{directive}"
        )
        outcome = _outcome(response)
        status, retry_after = _status(response)
        read = Read(server, directive, start, end, outcome, status, retry_after)
        if outcome is Outcome.OK and response is not None:
            node = response.json()
            revision, version, body = node["revision"], node["active_version"], node["body"]
            read = Read(
                server, directive, start, end, outcome, status, None, revision, version, body
            )
        self.operations.append(read)
        return read

    async def write(self, server: str, directive: str, expected: int) -> Write:
        """PATCH a body no other write uses, with `If-Match: "expected"`."""
        self._texts += 1
        text = f"<<{server}:{self._texts:06d}>>"  # delimited: never inside another text
        self.writing[server] += 1
        try:
            start, end, response = await self._call(
                server,
                "PATCH",
                f"{self.tree.base}/directives/{directive}",
                json={"body": text},
                headers={"If-Match": f'"{expected}"'},
            )
        finally:
            self.writing[server] -= 1
        outcome = _outcome(response)
        status, retry_after = _status(response)
        write = Write(server, directive, expected, text, start, end, outcome, status, retry_after)
        if outcome is Outcome.OK and response is not None:
            node = response.json()
            revision, version = node["revision"], node["active_version"]
            write = Write(
                server,
                directive,
                expected,
                text,
                start,
                end,
                outcome,
                status,
                None,
                revision,
                version,
            )
        self.operations.append(write)
        return write

    async def prompt(self, server: str, agent: str) -> PromptRead:
        start, end, response = await self._call(
            server, "GET", f"{self.tree.base}/agents/{agent}/prompt"
        )
        outcome = _outcome(response)
        status, retry_after = _status(response)
        read = PromptRead(server, agent, start, end, outcome, status, retry_after)
        if outcome is Outcome.OK and response is not None:
            document = response.json()
            layers, text = _layers(document), document["text"]
            revision = document["realm_revision"]
            read = PromptRead(
                server, agent, start, end, outcome, status, None, layers, text, revision
            )
        self.operations.append(read)
        return read

    async def feed(self, server: str, reader: str, after: int) -> FeedRead:
        start, end, response = await self._call(
            server, "GET", f"{self.tree.base}/events", params={"after": after, "limit": FEED_PAGE}
        )
        outcome = _outcome(response)
        status, retry_after = _status(response)
        read = FeedRead(server, reader, after, start, end, outcome, status, retry_after)
        if outcome is Outcome.OK and response is not None:
            items = _items(response.json())
            read = FeedRead(server, reader, after, start, end, outcome, status, None, items)
        self.operations.append(read)
        return read

    async def _feed_reader(self, server: str, reader: str, stop: asyncio.Event) -> None:
        """Pages on from its cursor while the run lasts, then once more after it: whatever
        committed meanwhile must come, exactly once."""
        cursor = 0
        while True:
            stopping = stop.is_set()
            read = await self.feed(server, reader, cursor)
            if read.items:
                cursor = read.items[-1].seq
            if stopping and read.outcome is Outcome.OK and len(read.items) < FEED_PAGE:
                return
            if stopping and read.outcome is not Outcome.OK:
                return  # the server is down at the end: its reads so far are still checked
            await asyncio.sleep(_pause(read))

    async def _writer(self, server: str, stop: asyncio.Event, rng: random.Random) -> None:
        names = sorted(self.tree.directives)
        known: dict[str, int] = {}  # the last revision this writer saw of each directive
        while not stop.is_set():
            directive = self.tree.directives[rng.choice(names)]
            read = await self.read(server, directive)
            if read.outcome is Outcome.OK:
                known[directive] = read.revision
            elif directive not in known:
                await asyncio.sleep(PAUSE_AFTER_FAILURE)
                continue
            # When the read fails, write on what it last saw, as a client with an ETag would:
            # that is what makes writes meet an outage, not only reads.
            write = await self.write(server, directive, known[directive])
            if write.revision is not None:
                known[directive] = write.revision
            await asyncio.sleep(_pause(write))

    async def _reader(self, server: str, stop: asyncio.Event, rng: random.Random) -> None:
        names = sorted(self.tree.directives)
        while not stop.is_set():
            read = await self.read(server, self.tree.directives[rng.choice(names)])
            await asyncio.sleep(_pause(read))

    async def _prompt_reader(self, server: str, stop: asyncio.Event, rng: random.Random) -> None:
        agents = sorted(self.tree.chains)
        while not stop.is_set():
            read = await self.prompt(server, rng.choice(agents))
            await asyncio.sleep(_pause(read))


def _pause(op: Operation) -> float:
    return PAUSE if op.outcome is Outcome.OK else PAUSE_AFTER_FAILURE


def _status(response: httpx.Response | None) -> tuple[int | None, str | None]:
    if response is None:
        return None, None
    return response.status_code, response.headers.get("retry-after")


def _layers(document: dict[str, Any]) -> tuple[Layer, ...]:
    return tuple(
        Layer(layer["directive_id"], layer["version"], layer["revision"])
        for layer in document["layers"]
    )


def _items(page: dict[str, Any]) -> tuple[FeedItem, ...]:
    return tuple(
        FeedItem(
            event["seq"],
            event["type"],
            event["directive_id"],
            event["revision"],
            event["occurred_at"],
        )
        for event in page["items"]
    )


# --- after the run --------------------------------------------------------------------------


async def whole_feed(http: httpx.AsyncClient, tree: Tree) -> list[FeedItem]:
    """The realm's every event, paged from the start."""
    out: list[FeedItem] = []
    while True:
        after = out[-1].seq if out else 0
        page = await get_json(http, f"{tree.base}/events", params={"after": after, "limit": 200})
        items = _items(page)
        if not items:
            return out
        out += items


async def finals(http: httpx.AsyncClient, tree: Tree) -> dict[str, Final]:
    """Each directive's versions and their bodies, read through the API."""
    found = {}
    gate = asyncio.Semaphore(8)
    for directive in tree.directives.values():
        base = f"{tree.base}/directives/{directive}"
        node = await get_json(http, base)
        numbers: list[int] = []
        cursor: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": 500} | ({"cursor": cursor} if cursor else {})
            page = await get_json(http, f"{base}/versions", params=params)
            numbers += [item["version"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        bodies = await asyncio.gather(*(_body(http, gate, f"{base}/versions/{n}") for n in numbers))
        found[directive] = Final(
            directive,
            node["latest_version"],
            node["active_version"],
            dict(zip(numbers, bodies, strict=True)),
        )
    return found


async def _body(http: httpx.AsyncClient, gate: asyncio.Semaphore, url: str) -> str:
    async with gate:
        body: str = (await get_json(http, url))["body"]
        return body


async def composition(http: httpx.AsyncClient, tree: Tree, agent: str) -> Composition:
    document = await get_json(http, f"{tree.base}/agents/{agent}/prompt")
    return Composition(document["composition_id"], document["text"], _layers(document))


async def get_json(http: httpx.AsyncClient, url: str, **kwargs: Any) -> dict[str, Any]:
    # A server's pool may still hold a connection from before a database restart: the first
    # call through it is a 503 with Retry-After, which a client retries.
    for _ in range(RETRIES):
        response = await http.get(url, **kwargs)
        if response.status_code != 503:
            break
        await asyncio.sleep(float(response.headers.get("retry-after", "1")) / 4)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document
