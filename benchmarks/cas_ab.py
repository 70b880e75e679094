"""Scenario 3 as a before/after comparison: Charter at another revision against this tree.

Two Charter servers on one seeded realm, one importing a copy of an older `src` (`AB_BEFORE_SRC`
on its `PYTHONPATH`, e.g. from `git archive <rev> src`), the other this tree, alternating with
raw asyncpg's swap (`cas.py`'s `bare`) under the same writers, round after round. Besides the
CAS rates, the worker's CPU time (utime + stime from /proc) over each run, per attempt and per
successful CAS: steadier than a rate on a machine other work shares.

    git archive <rev> src | tar -x -C /tmp/before
    BENCH_APP_URL=… BENCH_OWNER_URL=… BENCH_REDIS_URL=… AB_BEFORE_SRC=/tmp/before/src \\
        python -m benchmarks.cas_ab          # AB_ROUNDS, AB_SECONDS, AB_DIRECTIVES, AB_POOL

(`scripts/bench` sets the same database up; the servers take `AB_POOL` connections each, and
so does the raw side, so the three hold three times AB_POOL of PostgreSQL's connections.)
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import asyncpg

from benchmarks import cas
from benchmarks.seed import analyze, seed
from benchmarks.servers import Server


def _worker_seconds(server: Server) -> float:
    """CPU seconds the server's worker processes have used so far."""
    total = 0
    for pid in server.worker_pids():
        if pid == server.process.pid:
            continue
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


async def _compare(
    servers: dict[str, Server],
    dsn: str,
    realm: str,
    key: str,
    every: list[str],
    rounds: int,
    seconds: float,
    pool_size: int,
) -> dict[str, Any]:
    pool = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size)
    results: dict[str, Any] = {}
    try:
        for writers, spread in ((8, 1), (32, 1), (8, len(every)), (32, len(every))):
            ids = every[:spread]
            sides: dict[str, Any] = {
                "before": cas.http_attempt(servers["before"].port, realm, key),
                "bare": lambda: (cas.swap_attempt(pool, realm), cas.nothing),
                "after": cas.http_attempt(servers["after"].port, realm, key),
            }
            runs: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
            for i in range(rounds):
                order = list(sides) if i % 2 == 0 else list(sides)[::-1]
                for side in order:
                    known = await cas.revisions(pool, realm, ids)
                    server = servers.get(side)
                    used = _worker_seconds(server) if server is not None else 0.0
                    result = await cas.load(sides[side], ids, known, writers, seconds)
                    if server is not None:
                        used = _worker_seconds(server) - used
                        tries = max(result["attempts_per_s"] * seconds, 1.0)
                        wins = max(result["cas_per_s"] * seconds, 1.0)
                        result["cpu_ms_per_attempt"] = 1000 * used / tries
                        result["cpu_ms_per_cas"] = 1000 * used / wins
                    result["load"] = os.getloadavg()[0]
                    runs[side].append(result)
                    print(
                        f"  {writers:>2} writers x {spread:>4} directives round {i + 1} "
                        f"{side:<6} {result['cas_per_s']:7.0f} CAS/s "
                        f"({result['attempts_per_s']:6.0f} tries/s)  worker CPU "
                        f"{result.get('cpu_ms_per_attempt', 0.0):5.2f} ms a try  "
                        f"load {result['load']:.1f}",
                        flush=True,
                    )
                    await asyncio.sleep(0.3)
            rate = {side: statistics.median(r["cas_per_s"] for r in runs[side]) for side in runs}
            summary: dict[str, Any] = {
                "before_vs_bare": rate["before"] / rate["bare"],
                "after_vs_bare": rate["after"] / rate["bare"],
                "after_vs_before": rate["after"] / rate["before"],
            }
            for side in ("before", "after"):
                for figure in ("cpu_ms_per_attempt", "cpu_ms_per_cas"):
                    summary[f"{side}_{figure}"] = statistics.median(r[figure] for r in runs[side])
            print(
                f"  = {writers} writers x {spread} directives: "
                + ", ".join(f"{name} {value:.2f}" for name, value in summary.items()),
                flush=True,
            )
            results[f"cas_{writers}w_{spread}d"] = {**summary, "median_cas_per_s": rate, **runs}
    finally:
        await pool.close()
    return results


def main() -> int:
    env = os.environ
    app_url, owner_url = env["BENCH_APP_URL"], env["BENCH_OWNER_URL"]
    before_src = env["AB_BEFORE_SRC"]
    rounds = int(env.get("AB_ROUNDS", "3"))
    seconds = float(env.get("AB_SECONDS", "4"))
    pool_size = int(env.get("AB_POOL", "10"))
    realm = "ab-" + secrets.token_hex(4)
    key = "chk_bench-" + secrets.token_hex(16)
    print(f"seeding realm {realm} …", flush=True)
    seeded = asyncio.run(seed(app_url, realm, int(env.get("AB_DIRECTIVES", "200"))))
    asyncio.run(analyze(owner_url.replace("postgresql+asyncpg://", "postgresql://")))
    common = {
        "CHARTER_DATABASE_URL": app_url,
        "CHARTER_REDIS_URL": env.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/2"),
        "CHARTER_BOOTSTRAP_KEY": key,
        "CHARTER_RATE_LIMIT": "0",
        "CHARTER_DATABASE_POOL_SIZE": str(pool_size),
    }
    with tempfile.TemporaryDirectory(prefix="charter-ab.") as tmp:
        work = Path(tmp)
        servers = {
            "after": Server(
                "after", "charter.app:app_from_env", {**common, "PYTHONPATH": None}, work / "a"
            ),
            "before": Server(
                "before",
                "charter.app:app_from_env",
                {**common, "PYTHONPATH": before_src},
                work / "b",
            ),
        }
        try:
            for server in servers.values():
                server.wait_ready()
            results = asyncio.run(
                _compare(
                    servers,
                    app_url.replace("postgresql+asyncpg://", "postgresql://"),
                    realm,
                    key,
                    seeded.cas_ids,
                    rounds,
                    seconds,
                    pool_size,
                )
            )
        finally:
            for server in servers.values():
                server.stop()
    out = Path(tempfile.gettempdir()) / f"charter-cas-ab-{realm}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"raw results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
