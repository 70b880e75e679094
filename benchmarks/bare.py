"""The baseline for cached reads: a bare Litestar route returning the same bytes as Charter.

`scripts/bench` fetches a prompt from Charter, writes its body and ETag to files, and serves
this app under the same granian options as Charter. The route has Charter's path shape and
answers `If-None-Match` with the same ETag → 304, so only Charter's own work differs.
"""

from __future__ import annotations

import os
from pathlib import Path

from litestar import Litestar, Request, Response, get


def create_app() -> Litestar:
    payload = Path(os.environ["BENCH_BARE_PAYLOAD"]).read_bytes()
    etag = Path(os.environ["BENCH_BARE_ETAG"]).read_text().strip()
    headers = {"ETag": etag}

    @get("/v1/realms/{realm_id:str}/agents/{agent_id:str}/prompt")
    async def prompt(request: Request[None, None, None]) -> Response[bytes]:
        if request.headers.get("if-none-match") == etag:
            return Response(b"", status_code=304, headers=headers)
        return Response(payload, media_type="application/json", headers=headers)

    @get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return Litestar(route_handlers=[prompt, healthz], logging_config=None)
