"""The report of a run: the machine, the table of figures, docs/benchmarks.{json,md,png}."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import chart

BEGIN = "<!-- bench:begin (written by scripts/bench; edit outside these markers) -->"
END = "<!-- bench:end -->"
ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return ""
    return (done.stdout or done.stderr).strip()


def machine(app_url: str) -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    redis = _run("redis-cli", "-h", "127.0.0.1", "INFO", "server")
    pg = _run("psql", "-h", "127.0.0.1", "-U", "postgres", "-tAc", "SHOW server_version")
    git = _run("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD")
    dirty = _run("git", "-C", str(ROOT), "status", "--porcelain", "--", "src")
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": {
            name: metadata.version(name)
            for name in (
                "granian",
                "litestar",
                "sqlalchemy",
                "asyncpg",
                "msgspec",
                "uvloop",
                "redis",
            )
        },
        "postgresql": pg.split()[0] if pg else "?",
        "redis_server": next(
            (
                line.split(":", 1)[1]
                for line in redis.splitlines()
                if line.startswith("redis_version")
            ),
            "?",
        ),
        "wrk": _run("wrk", "-v").split(" [")[0] or "?",
        "git": git + (" + uncommitted changes in src/" if dirty else ""),
        "load_average_start": os.getloadavg(),
    }


def machine_line(m: dict[str, Any]) -> str:
    return (
        f"machine: {m['nproc']} cores ({m['cpu']}), {m['memory_gb']} GB, Linux {m['kernel']}, "
        f"Python {m['python']}, PostgreSQL {m['postgresql']}, Redis {m['redis_server']}, "
        f"load average {m['load_average_start'][0]:.2f}"
    )


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}".replace(",", " ") if value >= 100 else f"{value:.2f}"


def table(figs: list[dict[str, Any]], markdown: bool = False) -> str:
    head = ["figure", "Charter", "baseline", "ratio", "§5 target", "met", "load"]
    rows = [
        [
            f["figure"],
            f"{_num(f['charter'])} {f['unit']}",
            f"{_num(f['baseline'])} {f['unit']}" if f["baseline"] is not None else "—",
            f"{f['ratio']:.2f}x" if f["ratio"] is not None else "—",
            f["target"],
            ("yes" if f["met"] else "**no**" if markdown else "NO") if f["target"] != "—" else "",
            f"{f['load']:.2f}" if f.get("load") is not None else "—",
        ]
        for f in figs
    ]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|---|---:|---:|---:|---|---|---:|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [head, *rows]
    )


def _statements(lines: list[str]) -> str:
    return "\n".join(f"{i + 1}. `{line}`" for i, line in enumerate(lines))


def _load(raw: dict[str, Any]) -> str:
    """What load each scenario that ran was under."""
    s, results = raw["settings"], raw["results"]
    parts = [
        f"{s['rounds']} rounds, baseline and Charter alternating (the order swaps every round);"
        " medians over rounds (the size scenario's baseline is the small realm)."
    ]
    if "prompt_200" in results:
        parts.append(
            f"Reads: wrk, 1 thread, {s['connections']} connections, {s['seconds']:g} s a run."
        )
    if "composition" in results:
        parts.append(f"Composition: {s['iterations']} sequential calls a run.")
    if any(k.startswith("cas_") for k in results):
        parts.append(f"CAS: {s['cas_seconds']:g} s a run.")
    if "realm" in raw:
        parts.append(f"Realm `{raw['realm']['id']}`: {raw['realm']['nodes']} directives.")
    if "fanout" in results:
        fan = results["fanout"]
        sse, poll = fan["memory"]["sse"], fan["memory"]["poll"]
        parts.append(
            f"Fan-out and watchers: realm `{fan['realm']['id']}`, {fan['realm']['nodes']} nodes,"
            f" {fan['realm']['agents']} agents, one event-stream watcher each, held by"
            f" {s['watcher_processes']} client processes per server; {s['fanout_rounds']}"
            f" root updates per side; {s['singles']} single-agent changes per side and round."
            f" Opening the streams took {sse['charter']['open_seconds']:.0f} s on Charter"
            f" (each reads and caches its prompt), {sse['bare']['open_seconds']:.0f} s on the"
            f" bare server; at the end {sse['charter']['still_open']} and"
            f" {sse['bare']['still_open']} were still open. Then as many long polls"
            " (`?wait=60` with the ETag) on a fresh pair of servers, for their memory; opening"
            f" them took {poll['charter']['open_seconds']:.0f} s and"
            f" {poll['bare']['open_seconds']:.0f} s."
        )
    if "size" in results:
        realms = results["size"]["realms"]
        parts.append(
            f"Size: realms of {realms['large']['nodes']} nodes ({realms['large']['versions']}"
            f" versions, seeded in {realms['large']['seed_seconds']:.0f} s) and"
            f" {realms['small']['nodes']} nodes ({realms['small']['versions']} versions);"
            f" {s['size_rounds']} rounds of {s['size_requests']} sequential requests per"
            " operation and realm."
        )
    if "embedded" in results:
        parts.append(
            "SQLite: `charter serve` in an empty folder (default database URL, no Redis),"
            f" {s['sqlite_rounds']} rounds."
        )
    if "streams" in results:
        st = results["streams"]
        parts.append(
            f"Event streams: {st['streams']} `events/stream` streams of one realm (and then"
            f" one), {st['writes_per_run']} sequential CAS text PATCHes a run, each after every"
            f" stream got the previous one's event; {s['stream_rounds']} rounds."
        )
    if "shutdown" in results:
        sh = results["shutdown"]
        parts.append(
            f"Shutdown: `charter serve` (PostgreSQL, Redis, 1 worker) holding {sh['streams']}"
            " streams (half `prompt/stream`, half `events/stream`), then SIGTERM to its main"
            " process; timed until that process is gone."
        )
    return "\n".join(f"- {part}" for part in parts)


def _generated(raw: dict[str, Any], figs: list[dict[str, Any]]) -> str:
    m, results = raw["machine"], raw["results"]
    packages = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
    sections = []
    if "composition" in results:
        comp = results["composition"]
        sections.append(
            f"""Cold composition, what one `Prompts.compute` asked of SQLAlchemy (its events; on an
AUTOCOMMIT connection its BEGIN and ROLLBACK events send nothing). Round trips, counted by a
TCP proxy in front of PostgreSQL: {comp["round_trips"]:g} per read, against
{comp["bare_round_trips"]:g} for the bare prepared query.

{_statements(comp["statements"])}"""
        )
    if "cas_round_trips" in results:
        trips = results["cas_round_trips"]
        sections.append(
            f"""A CAS body change, what Charter's write transaction sent
(`services/writes.update` in `Database.transaction`; {trips["round_trips"]:g} round trips, against
{trips["bare_round_trips"]:g} for the baseline's transaction; after commit, the PATCH also
tombstones the agents' Redis entries and publishes the invalidation):

{_statements(trips["statements"])}"""
        )
    details = "\n\n".join(sections)
    return f"""{BEGIN}

## Latest run

Command: `{raw["command"]}` (from the repository root; {m["seconds"]:.0f} s in all).

Machine: {m["nproc"]} cores ({m["cpu"]}), {m["memory_gb"]} GB, Linux {m["kernel"]},
Python {m["python"]}; PostgreSQL {m["postgresql"]}, Redis {m["redis_server"]}, {m["wrk"]};
{packages}. Git {m["git"]}. Load average {m["load_average_start"][0]:.2f} at the start,
{m["load_average_end"][0]:.2f} at the end.

Load:

{_load(raw)}

{table(figs, markdown=True)}

![benchmark figures](benchmarks.png)

{details}

Raw results: [`benchmarks.json`](benchmarks.json).

{END}"""


_SKELETON = """# Benchmarks

How Charter stands against DESIGN §5, measured by `scripts/bench`.

{generated}
"""


def write(docs: Path, raw: dict[str, Any], figs: list[dict[str, Any]]) -> None:
    raw = {**raw, "figures": figs}
    (docs / "benchmarks.json").write_text(json.dumps(raw, indent=2, default=str) + "\n")
    chart.chart(figs, docs / "benchmarks.png")
    path = docs / "benchmarks.md"
    generated = _generated(raw, figs)
    if path.exists() and BEGIN in (text := path.read_text()) and END in text:
        before, rest = text.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        path.write_text(before + generated + after)
    else:
        path.write_text(_SKELETON.format(generated=generated))
