"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from sqlalchemy import text

from charter.api.auth import ACCESS
from charter.api.deps import RuntimeDep
from charter.api.problems import problem
from charter.domain.access import Access


@get("/healthz", tags=["system"], summary="The process is alive", opt={ACCESS: Access.PUBLIC})
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get(
    "/readyz",
    tags=["system"],
    summary="The database (and cache) answer",
    opt={ACCESS: Access.PUBLIC},
)
async def readyz(runtime: RuntimeDep) -> Response[Any]:
    try:
        async with runtime.db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        return problem(503, "unavailable", "the database does not answer", {"Retry-After": "1"})
    return Response({"status": "ready", "database": "ok"})
