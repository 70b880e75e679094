"""An app whose lifespan starts a second time serves as the first time did, MCP included.

The schemathesis suite (tests/fuzz) seeds through one lifespan and fuzzes through another; an
embedding host may restart an app the same way. The MCP session manager runs once per
instance, so each lifespan needs its own.
"""

from __future__ import annotations

from litestar.testing import AsyncTestClient

from charter.app import create_app
from charter.settings import Settings
from tests.support.api import ADMIN_KEY

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    },
}
HEADERS = {
    "Authorization": f"Bearer {ADMIN_KEY}",
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
}


async def test_a_second_lifespan_serves_mcp_again(settings: Settings) -> None:
    app = create_app(settings, deliver_webhooks=False)
    sessions = []
    for _ in range(2):
        async with AsyncTestClient(app) as client:
            opened = await client.post("/mcp", json=INITIALIZE, headers=HEADERS)
            assert opened.status_code == 200, opened.text
            sessions.append(opened.headers["mcp-session-id"])
            assert (await client.get("/healthz")).status_code == 200
    assert sessions[0] != sessions[1]
