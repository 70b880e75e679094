"""Figures from raw results: each a ratio to its same-run baseline, beside its DESIGN §5 target.

A figure is a dict: `figure` (its name), `charter` and `baseline` (medians over rounds),
`unit`, `ratio` (Charter over baseline; for the size scenario, the large realm over the
small), `target` (text; "—" when §5 sets none), `met`, `load` (the machine's 1-min load
average over the series: the median of its runs' readings, each taken as a run ended), and
for the chart `kind` (throughput, latency, scale or other) and `bound` (the number the target
compares with). Scenarios that were not run (BENCH_ONLY) give no figures.
"""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.size import OPERATIONS

NO_TARGET = "—"


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(run[key] for run in runs))


def _figure(
    name: str,
    charter: float,
    baseline: float | None,
    unit: str,
    target: str = NO_TARGET,
    met: bool = True,
    *,
    kind: str = "other",
    bound: float | None = None,
    load: float | None = None,
) -> dict[str, Any]:
    return {
        "figure": name,
        "charter": charter,
        "baseline": baseline,
        "unit": unit,
        "ratio": charter / baseline if baseline else None,
        "target": target,
        "met": met,
        "kind": kind,
        "bound": bound,
        "load": load,
    }


def _load(*series: list[dict[str, Any]]) -> float | None:
    """The median 1-min load average over the runs of a series (None: not recorded)."""
    readings = [run["load"] for runs in series for run in runs if "load" in run]
    return float(statistics.median(readings)) if readings else None


# The read baselines: round 1's bare Litestar route (its floors stay as regression floors) and
# §5's bare ASGI callable, whose throughput Charter must reach 0.9x of, with a p99 no worse.
_READ_BASELINES = (("bare", "bare Litestar"), ("asgi", "bare ASGI"))
_LITESTAR_FLOORS = {"prompt_200": 0.7, "prompt_304": 0.8}
_ASGI_FLOOR = 0.9


def _reads(results: dict[str, Any], prefix: str = "") -> list[dict[str, Any]]:
    out = []
    for key, label in (("prompt_200", "cached prompt read"), ("prompt_304", "If-None-Match → 304")):
        if key not in results:
            continue
        runs = results[key]
        c_rps, c_p50, c_p99 = (_median(runs["charter"], k) for k in ("rps", "p50_ms", "p99_ms"))
        for side, name in _READ_BASELINES:
            if side not in runs:
                continue
            load = _load(runs["charter"], runs[side])
            b_rps, b_p50, b_p99 = (_median(runs[side], k) for k in ("rps", "p50_ms", "p99_ms"))
            floor = _ASGI_FLOOR if side == "asgi" else _LITESTAR_FLOORS[key]
            out.append(
                _figure(
                    f"{prefix}{label} vs {name}: throughput",
                    c_rps,
                    b_rps,
                    "req/s",
                    f"≥ {floor}x {name}",
                    c_rps / b_rps >= floor,
                    kind="throughput",
                    bound=floor,
                    load=load,
                )
            )
            out.append(_figure(f"{prefix}{label} vs {name}: p50", c_p50, b_p50, "ms", load=load))
            if side == "asgi":
                target, met = "≤ bare ASGI's p99", c_p99 <= b_p99
            else:  # round 1's absolute bound
                target, met = "< 10 ms (64 conns)", c_p99 < 10
            out.append(
                _figure(
                    f"{prefix}{label} vs {name}: p99",
                    c_p99,
                    b_p99,
                    "ms",
                    target,
                    met,
                    kind="latency",
                    bound=b_p99 if side == "asgi" else 10,
                    load=load,
                )
            )
    return out


def _composition(comp: dict[str, Any]) -> list[dict[str, Any]]:
    out = [
        _figure(
            "cold composition: round trips",
            comp["round_trips"],
            comp["bare_round_trips"],
            "per read",
            "1",
            comp["round_trips"] <= 1,
        )
    ]
    for pct in ("p50", "p99"):
        c = _median(comp["runs"]["charter"], f"{pct}_ms")
        b = _median(comp["runs"]["bare"], f"{pct}_ms")
        name = f"cold composition (depth 4, {comp['layers']} layers): {pct}"
        if pct == "p50":
            out.append(_figure(name, c, b, "ms", "< 3 ms", c < 3, kind="latency", bound=3))
        else:
            out.append(_figure(name, c, b, "ms"))
    return out


def _cas(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    if "cas_round_trips" in results:
        trips = results["cas_round_trips"]
        out.append(
            _figure(
                "CAS transaction (one body change): round trips",
                trips["round_trips"],
                trips["bare_round_trips"],
                "per write",
            )
        )
    for key, value in results.items():
        if not key.startswith("cas_") or key == "cas_round_trips":
            continue
        out += _cas_load(
            f"CAS, {value['writers']} writers over {value['directives']} directive(s)",
            value,
            "≥ 0.5x raw asyncpg",
        )
    return out


def _cas_load(label: str, value: dict[str, Any], target: str) -> list[dict[str, Any]]:
    load = _load(*(value[side] for side in ("charter", "bare", "etcd") if value.get(side)))
    c, b = _median(value["charter"], "cas_per_s"), _median(value["bare"], "cas_per_s")
    out = [
        _figure(
            f"{label}: CAS/s",
            c,
            b,
            "CAS/s",
            target,
            c / b >= 0.5,
            kind="throughput",
            bound=0.5,
            load=load,
        )
    ]
    if value.get("etcd"):  # the peer: §5 wants ≥ 1x over ≥ 32 directives of one realm
        e = _median(value["etcd"], "cas_per_s")
        spread = value.get("directives", 1) >= 32
        out.append(
            _figure(
                f"{label}: CAS/s vs etcd",
                c,
                e,
                "CAS/s",
                "≥ 1x etcd" if spread else NO_TARGET,
                c / e >= 1 or not spread,
                kind="throughput" if spread else "other",
                bound=1 if spread else None,
                load=load,
            )
        )
    if value.get("statements"):  # reference: the statement-by-statement transaction
        s = _median(value["statements"], "cas_per_s")
        out.append(_figure(f"{label}: CAS/s vs statements", c, s, "CAS/s", load=load))
        for design in ("lock_first", "xid8"):  # ADR 0006's feed designs, in raw asyncpg
            if value.get(design):
                d = _median(value[design], "cas_per_s")
                out.append(_figure(f"{label}: statements vs {design}", s, d, "CAS/s", load=load))
    if value.get("charter_2w"):  # `--workers 2` against the one worker, same run
        two = _median(value["charter_2w"], "cas_per_s")
        out.append(_figure(f"{label}: 2 workers vs 1", two, c, "CAS/s", load=load))
    c, b = _median(value["charter"], "p99_ms"), _median(value["bare"], "p99_ms")
    out.append(_figure(f"{label}: p99", c, b, "ms", load=load))
    if value.get("etcd"):
        e = _median(value["etcd"], "p99_ms")
        out.append(_figure(f"{label}: p99 vs etcd", c, e, "ms", load=load))
    return out


def _fanout(fan: dict[str, Any]) -> list[dict[str, Any]]:
    agents = f"{fan['realm']['agents']:,}".replace(",", " ")
    out = []
    for key, what in (("invalid", "every cache entry invalid"), ("told", "every watcher told")):
        for pct in ("p50", "p99", "max"):
            c = _median([r[key] for r in fan["fanout"]["charter"]], f"{pct}_ms")
            b = _median([r[key] for r in fan["fanout"]["bare"]], f"{pct}_ms")
            name = f"root update over {agents} agents: {what}, {pct}"
            load = _load(fan["fanout"]["charter"], fan["fanout"]["bare"])
            if pct == "p99":
                bound = 250 if key == "invalid" else 1000
                text = "< 250 ms" if key == "invalid" else "< 1 s"
                out.append(
                    _figure(
                        name, c, b, "ms", text, c < bound, kind="latency", bound=bound, load=load
                    )
                )
            else:
                out.append(_figure(name, c, b, "ms", load=load))
    for mode, what in (("sse", "event streams"), ("poll", "long polls")):
        memory = fan["memory"][mode]
        c, b = memory["charter"]["rss_after_mb"], memory["bare"]["rss_after_mb"]
        out.append(_figure(f"{agents} {what} on one process: RSS", c, b, "MB"))
        c, b = memory["charter"]["per_watcher_kb"], memory["bare"]["per_watcher_kb"]
        out.append(
            _figure(
                f"{agents} {what} on one process: per watcher",
                c,
                b,
                "KB",
                "≤ 1.1x bare push",
                c / b <= 1.1,
                kind="throughput",
                bound=1.1,
            )
        )
    single = fan["single"]
    for pct in ("p50", "p99"):
        c, b = single["charter"][f"{pct}_ms"], single["bare"][f"{pct}_ms"]
        name = f"one agent's change, {agents} watchers held: told, {pct}"
        if pct == "p99":
            out.append(_figure(name, c, b, "ms", "< 1 s", c < 1000, kind="latency", bound=1000))
        else:
            out.append(_figure(name, c, b, "ms"))
    return out


_SIZE_LABELS = {
    "read": "GET a directive",
    "list": "list, first page",
    "list_after": "list, page after a cursor",
    "versions": "a directive's versions",
    "write": "CAS write",
    "composition": "cold composition",
}


def _size(size: dict[str, Any]) -> list[dict[str, Any]]:
    realms = size["realms"]
    large = f"{realms['large']['nodes']:,}".replace(",", " ")
    small = f"{realms['small']['nodes']:,}".replace(",", " ")
    out = []
    for op in OPERATIONS:
        runs = size["runs"][op]
        for pct in ("p50", "p99"):
            c, b = _median(runs["large"], f"{pct}_ms"), _median(runs["small"], f"{pct}_ms")
            name = f"{large} vs {small} nodes, {_SIZE_LABELS[op]}: {pct}"
            if pct == "p50" and op != "write":
                out.append(
                    _figure(name, c, b, "ms", "≤ 1.2x small", c / b <= 1.2, kind="scale", bound=1.2)
                )
            else:
                out.append(_figure(name, c, b, "ms", kind="scale"))
    return out


def _embedded(emb: dict[str, Any]) -> list[dict[str, Any]]:
    out = _reads(emb, prefix="SQLite: ")
    out += _cas_load("SQLite: CAS, 8 writers over 1 directive", emb["cas"], "≥ 0.5x raw aiosqlite")
    return out


def _streams(s: dict[str, Any]) -> list[dict[str, Any]]:
    count = f"{s['streams']:,}".replace(",", " ")
    out = []
    for pct in ("p50", "p90"):
        c, b = _median(s["runs"]["many"], f"{pct}_ms"), _median(s["runs"]["one"], f"{pct}_ms")
        name = f"a write with {count} event streams open (vs one): {pct}"
        if pct == "p50":
            out.append(_figure(name, c, b, "ms", "≤ 1.5x one stream", c / b <= 1.5))
        else:
            out.append(_figure(name, c, b, "ms"))
    return out


def _shutdown(s: dict[str, Any]) -> list[dict[str, Any]]:
    count = f"{s['streams']:,}".replace(",", " ")
    gone = s["exit_seconds"]
    whole = s["ended_by_server"] == s["streams"] == s["with_retry_hint"]
    return [
        _figure(
            f"SIGTERM, {count} streams open: process gone",
            gone if gone is not None else float("inf"),
            None,
            "s",
            "< 5 s, every stream ended",
            gone is not None and gone < 5 and whole and not s["worker_killed"],
        ),
        _figure(
            f"SIGTERM, {count} streams open: streams ended with a retry hint",
            s["with_retry_hint"],
            s["streams"],
            "streams",
        ),
    ]


def _webhooks(w: dict[str, Any]) -> list[dict[str, Any]]:
    hook, stream = w["webhook"], w["stream"]
    return [
        _figure(
            "webhook delivered after commit (vs the event stream): p50",
            hook["p50_ms"],
            stream["p50_ms"],
            "ms",
        ),
        _figure(
            "webhook delivered after commit (vs the event stream): p99",
            hook["p99_ms"],
            stream["p99_ms"],
            "ms",
            "p99 < 1 s",
            hook["p99_ms"] < 1000,
        ),
    ]


def figures(results: dict[str, Any]) -> list[dict[str, Any]]:
    loads: dict[str, float] = results.get("loads", {})  # per scenario, as it ended

    def part(scenario: str, figs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for fig in figs:
            if fig["load"] is None:
                fig["load"] = loads.get(scenario)
        return figs

    out = part("reads", _reads(results))
    if "composition" in results:
        out += part("composition", _composition(results["composition"]))
    out += part("cas", _cas(results))
    if "fanout" in results:
        out += part("fanout", _fanout(results["fanout"]))
    if "size" in results:
        out += part("size", _size(results["size"]))
    if "embedded" in results:
        out += part("sqlite", _embedded(results["embedded"]))
    if "streams" in results:
        out += part("streams", _streams(results["streams"]))
    if "shutdown" in results:
        out += part("shutdown", _shutdown(results["shutdown"]))
    if "webhooks" in results:
        out += part("webhooks", _webhooks(results["webhooks"]))
    if "timers" in results:
        out += part("timers", _timers(results["timers"]))
    return out


def _timers(t: dict[str, Any]) -> list[dict[str, Any]]:
    """Lateness after the due time, against a bare sleep and one query (ADR 0008)."""
    out = []
    floor = t["baseline"]
    for name, label in (("leases", "lease expiry"), ("schedules", "schedule")):
        for pct in ("p50", "p99"):
            c, b = t[name][f"{pct}_ms"], floor[f"{pct}_ms"]
            figure = f"{label} lateness: {pct}"
            if pct == "p99":
                out.append(_figure(figure, c, b, "ms", "< 1 000 ms (§8, §10)", c < 1000))
            else:
                out.append(_figure(figure, c, b, "ms"))
    return out
