"""The in-process API driver: one realm's requests through the Litestar test client."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

# Accepted as an admin key by every app and server the tests start (CHARTER_BOOTSTRAP_KEY).
ADMIN_KEY = "chk_test-admin-key"


def new_realm_id() -> str:
    return "t-" + uuid.uuid4().hex[:20]


class Api:
    """Small request helpers for one realm, so tests read as the behaviour they check."""

    def __init__(self, client: AsyncTestClient[Litestar], realm_id: str) -> None:
        self.client = client
        self.realm = realm_id
        self.base = f"/v1/realms/{realm_id}/directives"

    async def create(self, **fields: Any) -> dict[str, Any]:
        body = {"level": "realm", "title": "Title", "body": "Body", **fields}
        response = await self.client.post(self.base, json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def child(
        self, parent: dict[str, Any], level: str = "team", **fields: Any
    ) -> dict[str, Any]:
        return await self.create(level=level, parent_id=parent["id"], **fields)

    async def get(self, directive_id: str) -> dict[str, Any]:
        response = await self.client.get(f"{self.base}/{directive_id}")
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found

    async def patch(self, node: dict[str, Any], expect: int = 200, **fields: Any) -> dict[str, Any]:
        response = await self.client.patch(
            f"{self.base}/{node['id']}",
            json=fields,
            headers={"If-Match": f'"{node["revision"]}"'},
        )
        assert response.status_code == expect, response.text
        result: dict[str, Any] = response.json()
        return result

    async def events(self, after: int = 0) -> list[dict[str, Any]]:
        response = await self.client.get(
            f"/v1/realms/{self.realm}/events", params={"after": after, "limit": 500}
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items
