"""`scripts/bench`: DESIGN §5, each figure as a ratio to a baseline from the same run.

Scenarios (BENCH_ONLY picks some, by number or name, comma-separated; default: all):

1 `reads`        cached prompt reads and 304s against a bare Litestar route (`reads.py`)
2 `composition`  cold composition against the bare query (`composition.py`)
3 `cas`          CAS writes against the same transaction in raw asyncpg (`cas.py`)
4, 5 `fanout`    a root update over 10 000 agents, and 10 000 watchers' memory (`fanout.py`)
6 `size`         a 100 000-node, 1 000 000-version realm against a 100-node one (`size.py`)
7 `sqlite`       scenarios 1 and 3 against `charter serve` in embedded mode (`embedded.py`)
8 `streams`      a write with 2 000 event streams open against one stream (`streams.py`)
9 `shutdown`     SIGTERM to `charter serve` holding 10 000 streams: time to exit (`streams.py`)
10 `webhooks`    webhook delivery latency after commit, against the event stream's (`webhooks.py`)
11 `timers`      lease expiry and schedule lateness against a bare sleep-and-query (`timers.py`)

Reads its database and Redis from the environment that `scripts/bench` sets: BENCH_APP_URL
(the app role), BENCH_OWNER_URL (the schema owner: bulk seeding, ANALYZE), BENCH_REDIS_URL.
The load knobs are in `_settings`. A full run writes docs/benchmarks.{json,md,png}; a BENCH_ONLY
run writes them only with BENCH_WRITE_DOCS=1, and otherwise leaves its JSON in the temp folder.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import (
    cas,
    composition,
    embedded,
    etcd,
    fanout,
    figures,
    reads,
    report,
    size,
    streams,
    timers,
    webhooks,
)
from benchmarks.seed import COMPOSER, analyze, seed
from benchmarks.servers import Server
from benchmarks.watchers import raise_fd_limit

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = (
    "reads",
    "composition",
    "cas",
    "fanout",
    "size",
    "sqlite",
    "streams",
    "shutdown",
    "webhooks",
    "timers",
)
_ALIASES = {
    "1": "reads",
    "2": "composition",
    "3": "cas",
    "4": "fanout",
    "5": "fanout",
    "watchers": "fanout",
    "6": "size",
    "7": "sqlite",
    "embedded": "sqlite",
    "8": "streams",
    "9": "shutdown",
    "10": "webhooks",
    "11": "timers",
}


def _settings() -> dict[str, Any]:
    env = os.environ

    def number(name: str, default: float) -> float:
        return float(env.get(name, default))

    app_url, owner_url = env["BENCH_APP_URL"], env["BENCH_OWNER_URL"]
    return {
        "app_url": app_url,
        "owner_url": owner_url,
        "app_dsn": _dsn(app_url),
        "owner_dsn": _dsn(owner_url),
        "redis_url": env.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/2"),
        "rounds": int(number("BENCH_ROUNDS", 3)),
        "seconds": number("BENCH_SECONDS", 5),
        "cas_seconds": number("BENCH_CAS_SECONDS", 4),
        "connections": int(number("BENCH_CONNECTIONS", 64)),
        "iterations": int(number("BENCH_ITERATIONS", 300)),
        "cas_directives": int(number("BENCH_CAS_DIRECTIVES", 1000)),
        "fanout_agents": int(number("BENCH_FANOUT_AGENTS", 10_000)),
        "fanout_rounds": int(number("BENCH_FANOUT_ROUNDS", 3)),
        "fanout_seconds": number("BENCH_FANOUT_SECONDS", 60),
        "singles": int(number("BENCH_SINGLES", 5)),
        "watcher_processes": int(number("BENCH_WATCHER_PROCESSES", 4)),
        "size_large": int(number("BENCH_SIZE_LARGE", 100_000)),
        "size_small": int(number("BENCH_SIZE_SMALL", 100)),
        "size_rounds": int(number("BENCH_SIZE_ROUNDS", 3)),
        "size_requests": int(number("BENCH_SIZE_REQUESTS", 100)),
        "sqlite_rounds": int(number("BENCH_SQLITE_ROUNDS", 3)),
        "sqlite_cas_directives": 8,
        "stream_count": int(number("BENCH_STREAMS", 2000)),
        "stream_rounds": int(number("BENCH_STREAM_ROUNDS", 3)),
        "stream_writes": int(number("BENCH_STREAM_WRITES", 20)),
        "shutdown_streams": int(number("BENCH_SHUTDOWN_STREAMS", 10_000)),
        "webhook_writes": int(number("BENCH_WEBHOOK_WRITES", 300)),
        "timer_count": int(number("BENCH_TIMERS", 20)),
        "timer_rounds": int(number("BENCH_TIMER_ROUNDS", 3)),
    }


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def selected(only: str) -> list[str]:
    """The scenarios BENCH_ONLY names, in run order; all of them when it is empty."""
    if not only.strip():
        return list(SCENARIOS)
    names = {_ALIASES.get(part.strip(), part.strip()) for part in only.split(",") if part.strip()}
    unknown = names - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"BENCH_ONLY: unknown scenario(s) {sorted(unknown)}; know {SCENARIOS}")
    return [name for name in SCENARIOS if name in names]


def _cas_profiler(charter: Server) -> Any:
    """BENCH_PROFILE_CAS names a file: py-spy's raw stacks of a CAS run go there."""
    out = os.environ.get("BENCH_PROFILE_CAS")
    if not out:
        return None
    return lambda seconds: charter.profile(Path(out), seconds)


def _first_three(
    cfg: dict[str, Any], work: Path, admin_key: str, only: list[str], raw: dict[str, Any]
) -> dict[str, Any]:
    """Scenarios 1-3: one seeded realm, one Charter server and the bare route."""
    realm_id = "bench-" + secrets.token_hex(4)
    print(f"seeding realm {realm_id} …", flush=True)
    realm = asyncio.run(seed(cfg["app_url"], realm_id, cfg["cas_directives"]))
    asyncio.run(analyze(cfg["owner_dsn"]))
    raw["realm"] = {"id": realm_id, "nodes": realm.nodes}
    results: dict[str, Any] = {}
    servers: list[Server] = []
    stops: list[Callable[[], None]] = []
    try:
        charter = Server(
            "charter",
            "charter.app:app_from_env",
            {
                "CHARTER_DATABASE_URL": cfg["app_url"],
                "CHARTER_REDIS_URL": cfg["redis_url"],
                "CHARTER_BOOTSTRAP_KEY": admin_key,
                "CHARTER_RATE_LIMIT": "0",
            },
            work / "charter.log",
        )
        servers.append(charter)
        charter.wait_ready()
        if "reads" in only:
            path = reads.prompt_path(realm_id, COMPOSER)
            status, payload, etag = reads.fetch(
                charter.base + path, {"Authorization": f"Bearer {realm.composer_key}"}
            )
            if status != 200:
                raise RuntimeError(f"the prompt answered {status}: {payload[:300]!r}")
            (work / "payload").write_bytes(payload)
            (work / "etag").write_text(etag)
            bare = Server(
                "bare",
                "benchmarks.bare:create_app",
                {
                    "BENCH_BARE_PAYLOAD": str(work / "payload"),
                    "BENCH_BARE_ETAG": str(work / "etag"),
                },
                work / "bare.log",
            )
            servers.append(bare)
            asgi = Server(
                "asgi",
                "benchmarks.bare_asgi:create_app",
                {
                    "BENCH_BARE_PAYLOAD": str(work / "payload"),
                    "BENCH_BARE_ETAG": str(work / "etag"),
                },
                work / "asgi.log",
            )
            servers.append(asgi)
            bare.wait_ready()
            asgi.wait_ready()
            print(
                f"1. cached prompt read ({len(payload)} bytes), wrk at "
                f"{cfg['connections']} connections",
                flush=True,
            )
            results.update(
                reads.run(
                    charter,
                    [bare, asgi],
                    path,
                    realm.composer_key,
                    etag,
                    rounds=cfg["rounds"],
                    seconds=cfg["seconds"],
                    connections=cfg["connections"],
                )
            )
        if "composition" in only:
            print("2. cold composition (in-process, no cache tier)", flush=True)
            results["composition"] = asyncio.run(
                composition.run(
                    cfg["app_url"],
                    realm_id,
                    COMPOSER,
                    rounds=cfg["rounds"],
                    iterations=cfg["iterations"],
                )
            )
        if "cas" in only:
            print("3. CAS updates through HTTP vs raw asyncpg", flush=True)
            two = None
            if os.environ.get("BENCH_CAS_TWO_WORKERS"):  # `--workers 2` as one more series
                two = Server(
                    "charter-2w",
                    "charter.app:app_from_env",
                    {
                        "CHARTER_DATABASE_URL": cfg["app_url"],
                        "CHARTER_REDIS_URL": cfg["redis_url"],
                        "CHARTER_BOOTSTRAP_KEY": admin_key,
                        "CHARTER_RATE_LIMIT": "0",
                        # The one worker's 20 connections, shared: PostgreSQL's slots are too.
                        "CHARTER_DATABASE_POOL_SIZE": "10",
                    },
                    work / "charter-2w.log",
                    workers=2,
                )
                servers.append(two)
                two.wait_ready()
            results["cas_round_trips"] = asyncio.run(
                cas.round_trips(cfg["app_url"], realm_id, realm.cas_ids[-1])
            )
            peers: dict[str, cas.Peer] = {}
            if etcd.available():
                peer = etcd.Etcd()
                stops.append(peer.stop)
                peer.wait_ready()
                peer.seed(realm_id, realm.cas_ids, "seed")
                peers["etcd"] = (
                    peer.writer(realm_id),
                    lambda ids: peer.revisions(realm_id, ids),
                )
                raw["etcd"] = etcd.version()
            else:
                print("  (etcd not installed: no peer for CAS)", flush=True)
            results.update(
                asyncio.run(
                    cas.run(
                        cfg["app_dsn"],
                        charter.port,
                        realm_id,
                        admin_key,
                        realm.cas_ids,
                        rounds=cfg["rounds"],
                        seconds=cfg["cas_seconds"],
                        owner_dsn=cfg["owner_dsn"],
                        profiler=_cas_profiler(charter),
                        two_workers_port=two.port if two is not None else None,
                        peers=peers,
                    )
                )
            )
    finally:
        for server in servers:
            server.stop()
        for stop in stops:
            stop()
    return results


def main() -> int:
    cfg = _settings()
    only = selected(os.environ.get("BENCH_ONLY", ""))
    files = raise_fd_limit()
    started = time.time()
    machine = report.machine(cfg["app_url"])
    print(report.machine_line(machine) + f", open files {files}", flush=True)
    print(f"scenarios: {', '.join(only)}", flush=True)
    admin_key = "chk_bench-" + secrets.token_hex(16)
    command = "scripts/bench"
    if os.environ.get("BENCH_ONLY"):
        command = f"BENCH_ONLY={os.environ['BENCH_ONLY']} scripts/bench"
    raw: dict[str, Any] = {"command": command, "scenarios": only}
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="charter-bench.") as tmp:
        work = Path(tmp)
        if {"reads", "composition", "cas"} & set(only):
            results.update(_first_three(cfg, work, admin_key, only, raw))
        loads: dict[str, float] = {}
        results["loads"] = loads
        for name in ("reads", "composition", "cas"):
            if name in only:
                loads[name] = os.getloadavg()[0]
        if "fanout" in only:
            print(
                f"4, 5. {cfg['fanout_agents']} watchers on one process; a root update "
                "over all of them",
                flush=True,
            )
            results["fanout"] = asyncio.run(fanout.run(cfg, work, admin_key))
            loads["fanout"] = os.getloadavg()[0]
        if "size" in only:
            print(
                f"6. a {cfg['size_large']}-node realm against a {cfg['size_small']}-node one",
                flush=True,
            )
            results["size"] = asyncio.run(
                size.run(
                    cfg, work, admin_key, rounds=cfg["size_rounds"], count=cfg["size_requests"]
                )
            )
            loads["size"] = os.getloadavg()[0]
        if "sqlite" in only:
            print("7. embedded mode: `charter serve` on SQLite, no Redis", flush=True)
            results["embedded"] = asyncio.run(
                embedded.run(
                    cfg, work, admin_key, rounds=cfg["sqlite_rounds"], seconds=cfg["cas_seconds"]
                )
            )
            loads["sqlite"] = os.getloadavg()[0]
        if "streams" in only:
            print(
                f"8. a write with {cfg['stream_count']} event streams open vs with one",
                flush=True,
            )
            results["streams"] = asyncio.run(streams.write_latency(cfg, work, admin_key))
            loads["streams"] = os.getloadavg()[0]
        if "shutdown" in only:
            print(
                f"9. SIGTERM to `charter serve` holding {cfg['shutdown_streams']} streams",
                flush=True,
            )
            results["shutdown"] = asyncio.run(streams.shutdown(cfg, work, admin_key))
            loads["shutdown"] = os.getloadavg()[0]
        if "webhooks" in only:
            print(
                f"10. webhook delivery after commit, {cfg['webhook_writes']} writes, "
                "against the event stream",
                flush=True,
            )
            results["webhooks"] = asyncio.run(webhooks.run(cfg, work, admin_key))
            loads["webhooks"] = os.getloadavg()[0]
        if "timers" in only:
            print(
                f"11. {cfg['timer_count']} lease expiries and schedules a round, how late",
                flush=True,
            )
            results["timers"] = asyncio.run(timers.run(cfg, work, admin_key))
            loads["timers"] = os.getloadavg()[0]
        machine["load_average_end"] = os.getloadavg()
        machine["seconds"] = round(time.time() - started, 1)
        raw.update(
            machine=machine,
            settings={k: v for k, v in cfg.items() if not k.endswith(("_url", "_dsn"))},
            results=results,
        )
        figs = figures.figures(results)
        if only == list(SCENARIOS) or os.environ.get("BENCH_WRITE_DOCS") == "1":
            report.write(ROOT / "docs", raw, figs)
        else:
            kept = Path(tempfile.gettempdir()) / f"charter-bench-{int(started)}.json"
            kept.write_text(json.dumps({**raw, "figures": figs}, indent=2, default=str) + "\n")
            print(f"(a partial run: docs untouched; raw results in {kept})")
    print(report.table(figs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
