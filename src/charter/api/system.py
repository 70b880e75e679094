"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from sqlalchemy import text

from charter.api.deps import RuntimeDep
from charter.api.problems import problem


@get("/healthz", tags=["system"], summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", tags=["system"], summary="The database (and cache) answer")
async def readyz(runtime: RuntimeDep) -> Response[Any]:
    try:
        async with runtime.db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        return problem(503, "unavailable", "the database does not answer", {"Retry-After": "1"})
    return Response({"status": "ready", "database": "ok"})
