"""`scripts/bench`: DESIGN §5 scenarios 1-3, each as a ratio to a baseline from the same run.

Reads its database and Redis from the environment that `scripts/bench` sets:
BENCH_APP_URL (the app role), BENCH_OWNER_URL (the schema owner, for ANALYZE), BENCH_REDIS_URL;
BENCH_ROUNDS, BENCH_SECONDS, BENCH_CAS_SECONDS, BENCH_CONNECTIONS, BENCH_ITERATIONS and
BENCH_CAS_DIRECTIVES change the load.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import cas, composition, reads, report
from benchmarks.seed import COMPOSER, analyze, seed
from benchmarks.servers import Server

ROOT = Path(__file__).resolve().parent.parent


def _settings() -> dict[str, Any]:
    env = os.environ
    return {
        "app_url": env["BENCH_APP_URL"],
        "owner_url": env["BENCH_OWNER_URL"],
        "redis_url": env.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/2"),
        "rounds": int(env.get("BENCH_ROUNDS", 3)),
        "seconds": float(env.get("BENCH_SECONDS", 5)),
        "cas_seconds": float(env.get("BENCH_CAS_SECONDS", 4)),
        "connections": int(env.get("BENCH_CONNECTIONS", 64)),
        "iterations": int(env.get("BENCH_ITERATIONS", 300)),
        "cas_directives": int(env.get("BENCH_CAS_DIRECTIVES", 1000)),
    }


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def main() -> int:
    cfg = _settings()
    started = time.time()
    machine = report.machine(cfg["app_url"])
    print(report.machine_line(machine), flush=True)
    realm_id = "bench-" + secrets.token_hex(4)
    print(f"seeding realm {realm_id} …", flush=True)
    realm = asyncio.run(seed(cfg["app_url"], realm_id, cfg["cas_directives"]))
    asyncio.run(analyze(_dsn(cfg["owner_url"])))
    admin_key = "chk_bench-" + secrets.token_hex(16)
    servers: list[Server] = []
    with tempfile.TemporaryDirectory(prefix="charter-bench.") as tmp:
        work = Path(tmp)
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
            bare.wait_ready()

            print(
                f"1. cached prompt read ({len(payload)} bytes), wrk at "
                f"{cfg['connections']} connections",
                flush=True,
            )
            results: dict[str, Any] = reads.run(
                charter,
                bare,
                path,
                realm.composer_key,
                etag,
                rounds=cfg["rounds"],
                seconds=cfg["seconds"],
                connections=cfg["connections"],
            )
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
            print("3. CAS updates through HTTP vs raw asyncpg", flush=True)
            results["cas_round_trips"] = asyncio.run(
                cas.round_trips(cfg["app_url"], realm_id, realm.cas_ids[-1])
            )
            results.update(
                asyncio.run(
                    cas.run(
                        _dsn(cfg["app_url"]),
                        charter.port,
                        realm_id,
                        admin_key,
                        realm.cas_ids,
                        rounds=cfg["rounds"],
                        seconds=cfg["cas_seconds"],
                    )
                )
            )
        finally:
            for server in servers:
                server.stop()
    machine["load_average_end"] = os.getloadavg()
    machine["seconds"] = round(time.time() - started, 1)
    raw = {
        "machine": machine,
        "settings": {k: v for k, v in cfg.items() if not k.endswith("_url")},
        "realm": {"id": realm_id, "nodes": realm.nodes},
        "results": results,
    }
    figures = report.figures(results)
    report.write(ROOT / "docs", raw, figures)
    print(report.table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
