"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from sqlalchemy import text

from charter.api.auth import ACCESS, PUBLIC_BY_SETTING
from charter.api.deps import RuntimeDep
from charter.api.openapi import problem_response
from charter.api.problems import problem
from charter.domain.access import Access
from charter.observability.metrics import CONTENT_TYPE


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
    summary="Metrics, Prometheus text format (docs/metrics.md)",
    operation_id="metrics",
    description="Needs a key of any role, unless the server runs with CHARTER_METRICS_PUBLIC=1.",
    # Any key; the auth middleware opens it to all when settings.metrics_public.
    opt={ACCESS: Access.ANY, PUBLIC_BY_SETTING: "metrics_public"},
    media_type=CONTENT_TYPE,
)
async def metrics(runtime: RuntimeDep) -> Response[bytes]:
    return Response(runtime.metrics.render(), media_type=CONTENT_TYPE)
