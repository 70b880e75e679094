"""Thousands of watchers, held by a few child processes: event streams or long polls.

One asyncio process cannot hold 10 000 connections and still read them promptly on a 2-core
machine shared with the server, so `Fleet` spreads them over child processes
(`python -m benchmarks.watchers`). Each child opens its share of streams (a bounded number of
connects at a time, so the server's listen backlog never overflows), reports `ready` once
every stream has delivered its first `prompt` event, then answers the parent's commands on
stdin, one line each (a long-poll watcher, mode `poll`, is ready once its `?wait=60` request
with the prompt's ETag is sent, and is told by a 200 answer to it):

- `mark`: forget what was told so far; answers `ok`;
- `told`: how many streams received a `prompt` event since the mark;
- `times`: for each stream, the CLOCK_MONOTONIC time of its first `prompt` event since the
  mark (null if none), as JSON;
- `open`: how many streams are still open;
- `ended`: JSON `[closed, retried, last]`: how many streams the server closed, how many of
  those had a `retry:` field first (a stopping server's hint), and the CLOCK_MONOTONIC time
  of the last close (null if none);
- `quit`, or the end of stdin (the parent died): close everything and exit.

Mode `sse` watches `prompt/stream` (ready on its first `prompt` event); mode `events` watches
`events/stream`, which sends nothing on connect (ready once its 200 is in; told by any
`directive.*` event).

CLOCK_MONOTONIC is one clock for every process on the machine, so times taken here compare
with times the parent takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MARK = b"event: prompt"
EVENTS_MARK = b"event: directive."
RETRY = b"\nretry: "


def raise_fd_limit() -> int:
    """Lift this process's open-file limit to its hard limit; returns the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- the child -------------------------------------------------------------------------------


@dataclass
class _Stream:
    path: str
    mark: bytes = MARK
    initial: bool = True  # the stream sends one marked event on connect
    events: int = 0
    told_at: float | None = None
    failed: str | None = None
    closed_at: float | None = None  # the server closed it
    retried: bool = False  # it carried a `retry:` field
    first: asyncio.Event = field(default_factory=asyncio.Event)


async def _hold(stream: _Stream, host: str, port: int, key: str, gate: asyncio.Semaphore) -> None:
    request = (
        f"GET {stream.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {key}\r\nAccept: text/event-stream\r\n\r\n"
    ).encode()
    writer: asyncio.StreamWriter | None = None
    try:
        async with gate:  # held until the first event: connects and first answers are paced
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 120)
            status = head.split(b" ", 2)[1]
            if status != b"200":
                stream.failed = f"status {status.decode()}"
                return
            tail = b""
            if not stream.initial:
                stream.first.set()
            while not stream.first.is_set():
                data = await asyncio.wait_for(reader.read(65536), 120)
                if not data:
                    stream.failed = "closed before the first event"
                    return
                tail = _count(stream, tail + data, initial=True)
        while data := await reader.read(65536):
            tail = _count(stream, tail + data, initial=False)
        stream.failed = "closed by the server"
        stream.closed_at = time.monotonic()
    except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
        stream.failed = type(exc).__name__
    finally:
        stream.first.set()
        if writer is not None:
            writer.close()


async def _answer(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One HTTP/1.1 answer with a Content-Length: its status and ETag."""
    head = await reader.readuntil(b"\r\n\r\n")
    fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
    fields = {k.strip().lower(): v.strip() for k, v in fields.items()}
    await reader.readexactly(int(fields.get(b"content-length", b"0")))
    return head.split(b" ", 2)[1], fields.get(b"etag", b"")


async def _poll(stream: _Stream, host: str, port: int, key: str, gate: asyncio.Semaphore) -> None:
    """A long-poll watcher: the prompt, then `?wait=60` with its ETag, again and again."""

    def ask(etag: bytes | None) -> bytes:
        wait = b"?wait=60" if etag else b""
        match = b"If-None-Match: " + etag + b"\r\n" if etag else b""
        return (
            b"GET "
            + stream.path.encode()
            + wait
            + b" HTTP/1.1\r\nHost: "
            + host.encode()
            + b"\r\nAuthorization: Bearer "
            + key.encode()
            + b"\r\n"
            + match
            + b"\r\n"
        )

    writer: asyncio.StreamWriter | None = None
    try:
        async with gate:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(ask(None))
            status, etag = await asyncio.wait_for(_answer(reader), 120)
            if status != b"200":
                stream.failed = f"status {status.decode()}"
                return
            writer.write(ask(etag))
            stream.first.set()  # the wait is on its way: the server holds it from here
        while True:
            status, tag = await _answer(reader)
            if status == b"200":
                if stream.told_at is None:
                    stream.told_at = time.monotonic()
                etag = tag
            elif status != b"304":
                stream.failed = f"status {status.decode()}"
                return
            writer.write(ask(etag))
    except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
        stream.failed = type(exc).__name__
    finally:
        stream.first.set()
        if writer is not None:
            writer.close()


def _count(stream: _Stream, chunk: bytes, *, initial: bool) -> bytes:
    seen = chunk.count(stream.mark)
    if seen:
        stream.events += seen
        if initial:
            stream.first.set()
            seen -= 1
        if seen and stream.told_at is None:
            stream.told_at = time.monotonic()
    if RETRY in chunk:
        stream.retried = True
    # A tail this short cannot hold a whole mark: none is counted twice.
    return chunk[-(max(len(stream.mark), len(RETRY)) - 1) :]


async def _child(config: dict[str, Any]) -> None:
    raise_fd_limit()
    host, port, key = config["host"], config["port"], config["key"]
    gate = asyncio.Semaphore(config.get("concurrency", 64))
    mode = config.get("mode")
    if mode == "events":
        streams = [_Stream(path, EVENTS_MARK, initial=False) for path in config["paths"]]
    else:
        streams = [_Stream(path) for path in config["paths"]]
    hold = _poll if mode == "poll" else _hold
    tasks = [asyncio.create_task(hold(s, host, port, key, gate)) for s in streams]
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)

    def answer(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    await asyncio.gather(*(s.first.wait() for s in streams))
    failures = [s.failed for s in streams if s.failed]
    answer(f"ready {len(streams) - len(failures)} {json.dumps(failures[:5])}")
    try:
        while line := (await commands.readline()).decode().strip():
            if line == "mark":
                for s in streams:
                    s.told_at = None
                answer("ok")
            elif line == "told":
                answer(str(sum(s.told_at is not None for s in streams)))
            elif line == "times":
                answer(json.dumps([s.told_at for s in streams]))
            elif line == "open":
                answer(str(sum(s.failed is None for s in streams)))
            elif line == "ended":
                closed = [s for s in streams if s.closed_at is not None]
                last = max((s.closed_at for s in closed if s.closed_at), default=None)
                answer(json.dumps([len(closed), sum(s.retried for s in closed), last]))
            elif line == "quit":
                break
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    config = json.loads(sys.stdin.readline())
    try:
        import uvloop

        uvloop.run(_child(config))
    except ImportError:  # pragma: no cover - uvloop comes with granian[uvloop]
        asyncio.run(_child(config))


# --- the parent ------------------------------------------------------------------------------


class Fleet:
    """`len(paths)` watchers of one server, spread over `processes` children."""

    def __init__(
        self,
        name: str,
        port: int,
        paths: list[str],
        key: str,
        processes: int,
        log_dir: Path,
        mode: str = "sse",
    ) -> None:
        self.name = name
        self.mode = mode
        self.port = port
        self.paths = paths
        self.key = key
        self.processes = processes
        self.log_dir = log_dir
        self._children: list[asyncio.subprocess.Process] = []

    async def open(self, seconds: float = 300.0) -> float:
        """Start the children and wait until every stream has its first event; returns how
        long that took."""
        started = time.monotonic()
        share = -(-len(self.paths) // self.processes)
        for i in range(self.processes):
            paths = self.paths[i * share : (i + 1) * share]
            if not paths:
                break
            log = (self.log_dir / f"{self.name}-{self.mode}-watchers-{i}.log").open("wb")
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "benchmarks.watchers",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                limit=1 << 24,  # `times` answers one long line
                cwd=ROOT,
            )
            log.close()
            self._children.append(child)
            config = {
                "host": "127.0.0.1",
                "port": self.port,
                "key": self.key,
                "paths": paths,
                "mode": self.mode,
            }
            assert child.stdin is not None
            child.stdin.write(json.dumps(config).encode() + b"\n")
            await child.stdin.drain()
        answers = await asyncio.wait_for(self._each(None), seconds)
        problems = [a for a in answers if not a.startswith("ready ")]
        opened = sum(int(a.split()[1]) for a in answers if a.startswith("ready "))
        if problems or opened != len(self.paths):
            detail = "; ".join(a.split(" ", 2)[-1] for a in answers)
            raise RuntimeError(
                f"{self.name}: {opened} of {len(self.paths)} watchers opened ({detail})"
            )
        return time.monotonic() - started

    async def _each(self, command: str | None) -> list[str]:
        """Send `command` to every child (None: only read) and read one line from each."""

        async def ask(child: asyncio.subprocess.Process) -> str:
            assert child.stdin is not None
            assert child.stdout is not None
            if command is not None:
                child.stdin.write(command.encode() + b"\n")
                await child.stdin.drain()
            line = await child.stdout.readline()
            if not line:
                raise RuntimeError(f"a {self.name} watcher process died (see its log)")
            return line.decode().strip()

        return list(await asyncio.gather(*(ask(c) for c in self._children)))

    async def mark(self) -> None:
        await self._each("mark")

    async def told(self) -> int:
        return sum(int(a) for a in await self._each("told"))

    async def still_open(self) -> int:
        return sum(int(a) for a in await self._each("open"))

    async def ended(self) -> tuple[int, int, float | None]:
        """How many streams the server closed, how many with a retry hint, the last close."""
        closed = retried = 0
        last: float | None = None
        for answer in await self._each("ended"):
            c, r, t = json.loads(answer)
            closed, retried = closed + c, retried + r
            if t is not None:
                last = t if last is None else max(last, t)
        return closed, retried, last

    async def times(self) -> list[float | None]:
        out: list[float | None] = []
        for answer in await self._each("times"):
            out += json.loads(answer)
        return out

    async def wait_told(self, count: int, seconds: float, poll: float = 0.05) -> int:
        """Wait until `count` watchers were told since the mark, or `seconds` pass."""
        deadline = time.monotonic() + seconds
        told = 0
        while time.monotonic() < deadline:
            told = await self.told()
            if told >= count:
                break
            await asyncio.sleep(poll)
        return told

    async def close(self) -> None:
        for child in self._children:
            if child.returncode is None and child.stdin is not None:
                with contextlib.suppress(OSError, RuntimeError):
                    child.stdin.write(b"quit\n")
                    child.stdin.close()
        for child in self._children:
            try:
                await asyncio.wait_for(child.wait(), 10)
            except TimeoutError:
                child.kill()
                await child.wait()
        self._children = []


if __name__ == "__main__":
    main()
