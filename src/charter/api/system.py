"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from sqlalchemy import text

from charter.api.auth import ACCESS
from charter.api.deps import RuntimeDep
from charter.api.openapi import problem_response
from charter.api.problems import problem
from charter.domain.access import Access


@get(
    "/healthz",
    tags=["system"],
    summary="The process is alive",
    operation_id="healthz",
    description="Liveness: the process answers. Checks nothing else.",
    opt={ACCESS: Access.PUBLIC},
)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get(
    "/readyz",
    tags=["system"],
    summary="The database (and cache) answer",
    operation_id="readyz",
    description="Readiness: the database, and Redis where configured, answer.",
    responses={503: problem_response(503)},
    opt={ACCESS: Access.PUBLIC},
)
async def readyz(runtime: RuntimeDep) -> Response[Any]:
    try:
        async with runtime.db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        return problem(503, "unavailable", "the database does not answer", {"Retry-After": "1"})
    status = {"status": "ready", "database": "ok", "cache": "in-process"}
    if runtime.redis is not None:
        try:
            await runtime.redis.ping()
        except Exception:
            return problem(503, "unavailable", "Redis does not answer", {"Retry-After": "1"})
        status["cache"] = "ok" if runtime.hub.local.enabled else "resubscribing"
    return Response(status)


@get(
    "/metrics",
    tags=["system"],
    summary="Process counters, Prometheus text format",
    operation_id="metrics",
    description="Process counters in the Prometheus text format.",
    opt={ACCESS: Access.PUBLIC},
    media_type="text/plain; version=0.0.4",
)
async def metrics(runtime: RuntimeDep) -> str:
    return runtime.metrics.render()
