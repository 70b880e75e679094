"""Liveness and readiness."""

from __future__ import annotations

from litestar import Response, get
from sqlalchemy import text

from charter.api.deps import Runtime
from charter.api.problems import problem


@get("/healthz", tags=["system"], summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", tags=["system"], summary="The database (and cache) answer")
async def readyz(runtime: Runtime) -> Response[dict[str, str]] | Response[object]:
    try:
        async with runtime.db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return problem(503, "unavailable", "the database does not answer", {"Retry-After": "1"})
    return Response({"status": "ready", "database": "ok"})
