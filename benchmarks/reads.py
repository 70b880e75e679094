"""Scenario 1: cached prompt reads (200 and If-None-Match → 304) against a bare route."""

from __future__ import annotations

import os
import urllib.request
from typing import Any

from benchmarks.load import wrk
from benchmarks.servers import Server


def fetch(url: str, headers: dict[str, str]) -> tuple[int, bytes, str]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read(), answer.headers.get("ETag", "")
    except urllib.error.HTTPError as exc:  # 304 arrives as an HTTPError
        return exc.code, exc.read(), exc.headers.get("ETag", "")


def prompt_path(realm: str, agent: str) -> str:
    return f"/v1/realms/{realm}/agents/{agent}/prompt"


def run(
    charter: Server,
    bare: Server | list[Server],
    path: str,
    key: str,
    etag: str,
    *,
    rounds: int,
    seconds: float,
    connections: int,
    variants: tuple[str, ...] = ("prompt_200", "prompt_304"),
) -> dict[str, Any]:
    """Alternate Charter and its baselines round by round (the order reverses every round);
    every run's figures are kept, by server name."""
    servers = [charter, *(bare if isinstance(bare, list) else [bare])]
    auth = f"Bearer {key}"
    extras = {"prompt_200": {}, "prompt_304": {"If-None-Match": etag}}
    results: dict[str, Any] = {}
    for name in variants:
        extra = extras[name]
        headers = {"Authorization": auth, **extra}
        expected = 304 if extra else 200
        bodies = set()
        for server in servers:
            status, body, tag = fetch(server.base + path, headers)
            if status != expected or tag != etag:
                raise RuntimeError(f"{server.name} {name}: status {status}, ETag {tag!r}")
            bodies.add(body)
        if len(bodies) != 1:
            raise RuntimeError(f"{name}: Charter and a baseline answer different bytes")
        lines = [f"{k}: {v}" for k, v in headers.items()]
        for server in servers:  # warm up: connections, caches, the JIT-less paths
            wrk(server.base + path, lines, 1, connections)
        runs: dict[str, list[dict[str, float]]] = {server.name: [] for server in servers}
        for i in range(rounds):
            order = servers if i % 2 == 0 else servers[::-1]
            for server in order:
                result = wrk(server.base + path, lines, seconds, connections)
                load = os.getloadavg()[0]  # the 1-min average, as the run ends
                runs[server.name].append({**result.as_dict(), "load": load})
                print(
                    f"  {name} round {i + 1} {server.name:<8} {result.rps:9.0f} req/s  "
                    f"p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  "
                    f"errors {result.errors}  load {load:.2f}",
                    flush=True,
                )
        results[name] = runs
    return results
