"""Revocation against a key lookup already in flight, and malformed key ids."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from charter.clock import utcnow
from charter.runtime import Runtime
from charter.store import keys as key_store


async def test_a_lookup_that_races_a_revocation_is_not_cached(
    client: AsyncTestClient[Litestar], app: Litestar, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = await client.post("/v1/keys", json={"role": "reader", "realms": ["*"]})
    assert created.status_code == 201
    key_id, secret = created.json()["id"], created.json()["key"]
    runtime: Runtime = app.state.runtime
    real_lookup = key_store.by_secret_hash

    async def lookup_then_revoke(conn: Any, digest: str) -> Any:
        found = await real_lookup(conn, digest)  # the lookup reads the key as valid...
        # ...and meanwhile another process revokes it, and its broadcast arrives here.
        await key_store.revoke(conn, key_id, utcnow())
        runtime.keyring.revoke(key_id)
        return found

    monkeypatch.setattr(key_store, "by_secret_hash", lookup_then_revoke)
    reader = {"Authorization": f"Bearer {secret}"}
    assert (await client.get("/v1/realms", headers=reader)).status_code == 200
    monkeypatch.setattr(key_store, "by_secret_hash", real_lookup)
    # Had the racing lookup been cached, the revoked key would still pass here.
    assert (await client.get("/v1/realms", headers=reader)).status_code == 401


@pytest.mark.parametrize("key_id", ["%00", "garbage", "key_" + "Z" * 26, "dir_" + "0" * 26])
async def test_a_malformed_key_id_is_404_not_500(
    client: AsyncTestClient[Litestar], key_id: str
) -> None:
    response = await client.delete(f"/v1/keys/{key_id}")
    assert response.status_code == 404
    assert response.json()["code"] == "not-found"
