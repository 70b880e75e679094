"""Figures from raw results: ratios beside the DESIGN §5 targets, JSON, Markdown and a chart."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

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
    dirty = _run("git", "-C", str(ROOT), "status", "--porcelain", "--", "src", "migrations")
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
        "git": git + (" + uncommitted changes in src/ or migrations/" if dirty else ""),
        "load_average_start": os.getloadavg(),
    }


def machine_line(m: dict[str, Any]) -> str:
    return (
        f"machine: {m['nproc']} cores ({m['cpu']}), {m['memory_gb']} GB, Linux {m['kernel']}, "
        f"Python {m['python']}, PostgreSQL {m['postgresql']}, Redis {m['redis_server']}, "
        f"load average {m['load_average_start'][0]:.2f}"
    )


def _median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def _figure(
    name: str,
    charter: float,
    baseline: float | None,
    unit: str,
    target: str,
    met: bool,
    ratio: float | None = None,
) -> dict[str, Any]:
    if ratio is None and baseline:
        ratio = charter / baseline
    return {
        "figure": name,
        "charter": charter,
        "baseline": baseline,
        "unit": unit,
        "ratio": ratio,
        "target": target,
        "met": met,
    }


def figures(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key, label, floor in (
        ("prompt_200", "cached prompt read", 0.7),
        ("prompt_304", "If-None-Match → 304", 0.8),
    ):
        runs = results[key]
        c, b = _median(runs["charter"], "rps"), _median(runs["bare"], "rps")
        out.append(
            _figure(f"{label}: throughput", c, b, "req/s", f"≥ {floor}x bare", c / b >= floor)
        )
        for pct in ("p50", "p99"):
            c, b = _median(runs["charter"], f"{pct}_ms"), _median(runs["bare"], f"{pct}_ms")
            target = "< 10 ms (64 conns)" if pct == "p99" else "—"
            out.append(_figure(f"{label}: {pct}", c, b, "ms", target, pct != "p99" or c < 10))
    comp = results["composition"]
    out.append(
        _figure(
            "cold composition: round trips",
            comp["round_trips"],
            comp["bare_round_trips"],
            "per read",
            "1",
            comp["round_trips"] <= 1,
        )
    )
    for pct, target in (("p50", 3.0), ("p99", None)):
        c = _median(comp["runs"]["charter"], f"{pct}_ms")
        b = _median(comp["runs"]["bare"], f"{pct}_ms")
        text = f"< {target:g} ms" if target else "—"
        out.append(
            _figure(
                f"cold composition (depth 4, {comp['layers']} layers): {pct}",
                c,
                b,
                "ms",
                text,
                target is None or c < target,
            )
        )
    trips = results["cas_round_trips"]
    out.append(
        _figure(
            "CAS transaction (one body change): round trips",
            trips["round_trips"],
            trips["bare_round_trips"],
            "per write",
            "—",
            True,
        )
    )
    for key, value in results.items():
        if not key.startswith("cas_") or key == "cas_round_trips":
            continue
        c, b = _median(value["charter"], "cas_per_s"), _median(value["bare"], "cas_per_s")
        label = f"CAS, {value['writers']} writers over {value['directives']} directive(s)"
        out.append(_figure(f"{label}: CAS/s", c, b, "CAS/s", "≥ 0.5x raw asyncpg", c / b >= 0.5))
        if value.get("statements"):  # reference: the statement-by-statement transaction
            s = _median(value["statements"], "cas_per_s")
            out.append(_figure(f"{label}: CAS/s vs statements", c, s, "CAS/s", "—", True))
        c, b = _median(value["charter"], "p99_ms"), _median(value["bare"], "p99_ms")
        out.append(_figure(f"{label}: p99", c, b, "ms", "—", True))
    return out


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}".replace(",", " ") if value >= 100 else f"{value:.2f}"


def table(figs: list[dict[str, Any]], markdown: bool = False) -> str:
    head = ["figure", "Charter", "baseline", "ratio", "§5 target", "met"]
    rows = [
        [
            f["figure"],
            f"{_num(f['charter'])} {f['unit']}",
            f"{_num(f['baseline'])} {f['unit']}" if f["baseline"] is not None else "—",
            f"{f['ratio']:.2f}x" if f["ratio"] is not None else "—",
            f["target"],
            ("yes" if f["met"] else "**no**" if markdown else "NO") if f["target"] != "—" else "",
        ]
        for f in figs
    ]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|---|---:|---:|---:|---|---|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [head, *rows]
    )


def chart(figs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = [f for f in figs if f["unit"] in ("req/s", "CAS/s")]
    lat = [f for f in figs if f["unit"] == "ms" and f["target"] != "—"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.5), width_ratios=[3, 2])
    names = [f["figure"].replace(": throughput", "").replace(": CAS/s", "") for f in bars]
    ratios = [f["ratio"] for f in bars]
    targets = [float(f["target"].split("x")[0].lstrip("≥ ")) for f in bars]
    colours = ["tab:green" if f["met"] else "tab:red" for f in bars]
    ys = range(len(bars))
    left.barh(ys, ratios, color=colours)
    for y, t in zip(ys, targets, strict=True):
        left.plot([t, t], [y - 0.4, y + 0.4], color="black", linewidth=2)
    left.set_yticks(list(ys), names, fontsize=8)
    left.invert_yaxis()
    left.set_xlabel("Charter / baseline, same run (black: §5 target)")
    left.set_title("Throughput ratios")
    lnames = [f["figure"] for f in lat]
    ys = range(len(lat))
    left_vals = [f["charter"] for f in lat]
    right.barh(
        [y - 0.2 for y in ys],
        left_vals,
        height=0.4,
        label="Charter",
        color=["tab:green" if f["met"] else "tab:red" for f in lat],
    )
    right.barh(
        [y + 0.2 for y in ys],
        [f["baseline"] or 0 for f in lat],
        height=0.4,
        label="baseline",
        color="tab:gray",
    )
    for y, f in zip(ys, lat, strict=True):
        bound = float(f["target"].split()[1])
        right.plot([bound, bound], [y - 0.45, y + 0.45], color="black", linewidth=2)
    right.set_yticks(list(ys), lnames, fontsize=8)
    right.invert_yaxis()
    right.set_xscale("log")
    right.set_xlabel("ms, log scale (black: §5 bound)")
    right.set_title("Latency against absolute targets")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _generated(raw: dict[str, Any], figs: list[dict[str, Any]]) -> str:
    m, s = raw["machine"], raw["settings"]
    comp = raw["results"]["composition"]
    packages = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
    statements = "\n".join(f"{i + 1}. `{st}`" for i, st in enumerate(comp["statements"]))
    trips = raw["results"]["cas_round_trips"]
    writes = "\n".join(f"{i + 1}. `{st}`" for i, st in enumerate(trips["statements"]))
    return f"""{BEGIN}

## Latest run

Command: `scripts/bench` (from the repository root; {m["seconds"]:.0f} s in all).

Machine: {m["nproc"]} cores ({m["cpu"]}), {m["memory_gb"]} GB, Linux {m["kernel"]},
Python {m["python"]}; PostgreSQL {m["postgresql"]}, Redis {m["redis_server"]}, {m["wrk"]};
{packages}. Git {m["git"]}. Load average {m["load_average_start"][0]:.2f} at the start,
{m["load_average_end"][0]:.2f} at the end.

Load: {s["rounds"]} rounds, baseline and Charter alternating (the order swaps every round);
medians over rounds. Reads: wrk, 1 thread, {s["connections"]} connections, {s["seconds"]:g} s a
run. Composition: {s["iterations"]} sequential calls a run. CAS: {s["cas_seconds"]:g} s a run.
Realm `{raw["realm"]["id"]}`: {raw["realm"]["nodes"]} directives.

{table(figs, markdown=True)}

![benchmark figures](benchmarks.png)

Cold composition, what one `Prompts.compute` asked of SQLAlchemy (its events; on an
AUTOCOMMIT connection its BEGIN and ROLLBACK events send nothing). Round trips, counted by a
TCP proxy in front of PostgreSQL: {comp["round_trips"]:g} per read, against
{comp["bare_round_trips"]:g} for the bare prepared query.

{statements}

A CAS body change, what Charter's write transaction sent (`services/writes.update` in
`Database.transaction`; {trips["round_trips"]:g} round trips, against
{trips["bare_round_trips"]:g} for the baseline's transaction; after commit, the PATCH also
tombstones the agents' Redis entries and publishes the invalidation):

{writes}

Raw results: [`benchmarks.json`](benchmarks.json).

{END}"""


_SKELETON = """# Benchmarks

How Charter stands against DESIGN §5, measured by `scripts/bench`.

{generated}
"""


def write(docs: Path, raw: dict[str, Any], figs: list[dict[str, Any]]) -> None:
    raw = {**raw, "figures": figs}
    (docs / "benchmarks.json").write_text(json.dumps(raw, indent=2, default=str) + "\n")
    chart(figs, docs / "benchmarks.png")
    path = docs / "benchmarks.md"
    generated = _generated(raw, figs)
    if path.exists() and BEGIN in (text := path.read_text()) and END in text:
        before, rest = text.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        path.write_text(before + generated + after)
    else:
        path.write_text(_SKELETON.format(generated=generated))
