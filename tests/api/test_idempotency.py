"""Idempotency-Key on every POST, PATCH and DELETE: replay once, refuse misuse, keep 24 h."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, cast

import httpx
import pytest
from httpx import Response
from litestar import Litestar
from litestar.testing import AsyncTestClient

from charter.app import create_app
from charter.clock import utcnow
from charter.db.session import Database
from charter.services.idempotency import (
    fingerprint,
    purge_idempotency_records,
    replay_or_claim,
)
from charter.services.keys import BOOTSTRAP_KEY_ID
from charter.settings import Settings
from charter.store import idempotency
from charter.store.idempotency import Scope, Stored
from tests.support.api import ADMIN_KEY, Api, new_realm_id
from tests.support.checks import (
    assert_problem,
    assert_unchanged,
    if_match,
    other_realm,
    realm_revision,
    snapshot,
    versions_of,
)

REPLAYED = "Idempotent-Replayed"
HANG_GUARD_SECONDS = 30.0


def keyed(key: str, **headers: str) -> dict[str, str]:
    return {"Idempotency-Key": key, **headers}


def new_key() -> str:
    return "idem-" + uuid.uuid4().hex


def assert_replay_of(first: Response, again: Response) -> None:
    """`again` replays `first`: status, body and headers, marked as a replay."""
    assert REPLAYED not in first.headers
    assert again.headers.get(REPLAYED) == "true", again.text
    assert again.status_code == first.status_code, again.text
    assert again.content == first.content or again.json() == first.json()
    for header in ("etag", "location"):
        assert again.headers.get(header) == first.headers.get(header)


async def directive_ids(api: Api) -> list[str]:
    response = await api.client.get(api.base, params={"limit": 500})
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def create_body(**fields: Any) -> dict[str, Any]:
    return {"level": "realm", "title": "Title", "body": "Body", **fields}


async def _deactivate(api: Api, node: dict[str, Any], headers: dict[str, str]) -> Response:
    return await api.client.delete(f"{api.base}/{node['id']}", headers=headers)


# --- sequential replay ----------------------------------------------------------------------


async def test_a_repeated_create_replays_the_first_response_and_creates_once(api: Api) -> None:
    key = new_key()
    first = await api.client.post(api.base, json=create_body(), headers=keyed(key))
    assert first.status_code == 201, first.text
    again = await api.client.post(api.base, json=create_body(), headers=keyed(key))
    assert_replay_of(first, again)
    assert again.json()["id"] == first.json()["id"]
    assert await directive_ids(api) == [first.json()["id"]]
    assert [e["type"] for e in await api.events()] == ["directive.created"]


async def test_a_repeated_patch_replays_and_makes_one_version(api: Api) -> None:
    node = await api.create()
    key = new_key()
    url = f"{api.base}/{node['id']}"
    headers = keyed(key, **if_match(1))
    first = await api.client.patch(url, json={"title": "Second"}, headers=headers)
    assert first.status_code == 200, first.text
    again = await api.client.patch(url, json={"title": "Second"}, headers=headers)
    assert_replay_of(first, again)
    assert again.json()["revision"] == 2
    assert (await api.get(node["id"]))["revision"] == 2
    assert [v["version"] for v in await versions_of(api, node["id"])] == [2, 1]
    types = [e["type"] for e in await api.events()]
    assert types == ["directive.created", "directive.version_created"]


async def test_a_repeated_delete_replays_its_204_and_deactivates_once(api: Api) -> None:
    node = await api.create()
    headers = keyed(new_key(), **if_match(1))
    first = await _deactivate(api, node, headers)
    assert first.status_code == 204, first.text
    again = await _deactivate(api, node, headers)
    assert_replay_of(first, again)
    assert again.content == b""
    assert (await api.get(node["id"]))["revision"] == 2
    types = [e["type"] for e in await api.events()]
    assert types == ["directive.created", "directive.deactivated"]


async def test_a_repeated_rollback_replays_and_rolls_back_once(api: Api) -> None:
    node = await api.patch(await api.create(), title="Second")
    url = f"{api.base}/{node['id']}/rollback"
    headers = keyed(new_key(), **if_match(node["revision"]))
    first = await api.client.post(url, json={"version": 1}, headers=headers)
    assert first.status_code == 200, first.text
    again = await api.client.post(url, json={"version": 1}, headers=headers)
    assert_replay_of(first, again)
    after = await api.get(node["id"])
    assert (after["revision"], after["active_version"]) == (node["revision"] + 1, 1)
    types = [e["type"] for e in await api.events()]
    assert types.count("directive.rolled_back") == 1


async def test_a_repeated_realm_create_replays_instead_of_conflicting(
    client: AsyncTestClient[Litestar],
) -> None:
    realm_id = new_realm_id()
    headers = keyed(new_key())
    first = await client.post("/v1/realms", json={"id": realm_id}, headers=headers)
    assert first.status_code == 201, first.text
    again = await client.post("/v1/realms", json={"id": realm_id}, headers=headers)
    assert_replay_of(first, again)
    unkeyed = await client.post("/v1/realms", json={"id": realm_id})
    assert_problem(unkeyed, 409, "already-exists")


async def test_a_repeated_key_create_replays_and_mints_one_key(
    client: AsyncTestClient[Litestar],
) -> None:
    name = "idem-" + uuid.uuid4().hex[:12]
    body = {"role": "reader", "realms": ["*"], "name": name}
    headers = keyed(new_key())
    first = await client.post("/v1/keys", json=body, headers=headers)
    assert first.status_code == 201, first.text
    again = await client.post("/v1/keys", json=body, headers=headers)
    assert again.status_code == 201
    assert again.headers.get(REPLAYED) == "true"
    assert again.headers.get("location") == first.headers.get("location")
    # Everything but the secret: it is never stored, so a replay cannot show it again.
    assert first.json()["key"].startswith("chk_")
    assert again.json() == {**first.json(), "key": None}
    assert await _keys_named(client, name) == [first.json()["id"]]


async def _keys_named(client: AsyncTestClient[Litestar], name: str) -> list[str]:
    found: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 500} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/v1/keys", params=params)).json()
        found += [k["id"] for k in page["items"] if k["name"] == name]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


async def test_a_cas_patch_replays_after_the_revision_has_moved_on(api: Api) -> None:
    node = await api.create()
    url = f"{api.base}/{node['id']}"
    headers = keyed(new_key(), **if_match(1))
    first = await api.client.patch(url, json={"title": "Second"}, headers=headers)
    assert first.status_code == 200, first.text
    moved_on = await api.patch(first.json(), title="Third")
    assert moved_on["revision"] == 3
    again = await api.client.patch(url, json={"title": "Second"}, headers=headers)
    assert_replay_of(first, again)
    assert again.json()["revision"] == 2
    current = await api.get(node["id"])
    assert (current["revision"], current["title"]) == (3, "Third")


async def test_a_body_cas_patch_replays_after_the_revision_has_moved_on(api: Api) -> None:
    node = await api.create()
    url = f"{api.base}/{node['id']}"
    body = {"title": "Second", "expected_revision": 1}
    headers = keyed(new_key())
    first = await api.client.patch(url, json=body, headers=headers)
    assert first.status_code == 200, first.text
    await api.patch(first.json(), title="Third")
    again = await api.client.patch(url, json=body, headers=headers)
    assert_replay_of(first, again)
    assert (await api.get(node["id"]))["title"] == "Third"


# --- the same key for a different request -----------------------------------------------------


async def test_the_same_key_with_another_create_body_is_422_and_writes_nothing(api: Api) -> None:
    key = new_key()
    first = await api.client.post(api.base, json=create_body(), headers=keyed(key))
    assert first.status_code == 201, first.text
    revision = await realm_revision(api)
    other = await api.client.post(api.base, json=create_body(title="Other"), headers=keyed(key))
    assert_problem(other, 422, "idempotency-key-reused")
    assert REPLAYED not in other.headers
    assert await directive_ids(api) == [first.json()["id"]]
    assert await realm_revision(api) == revision


async def test_the_same_key_with_another_patch_is_422_and_writes_nothing(api: Api) -> None:
    node = await api.create()
    url = f"{api.base}/{node['id']}"
    key = new_key()
    first = await api.client.patch(url, json={"title": "A"}, headers=keyed(key, **if_match(1)))
    assert first.status_code == 200, first.text
    before = await snapshot(api, node["id"])
    other_body = await api.client.patch(url, json={"title": "B"}, headers=keyed(key, **if_match(2)))
    assert_problem(other_body, 422, "idempotency-key-reused")
    # The expected revision is part of the request: the same body against another is not a retry.
    other_match = await api.client.patch(
        url, json={"title": "A"}, headers=keyed(key, **if_match(2))
    )
    assert_problem(other_match, 422, "idempotency-key-reused")
    await assert_unchanged(api, before)


async def test_json_key_order_and_spacing_do_not_change_the_fingerprint(api: Api) -> None:
    key = new_key()
    compact = b'{"level":"realm","title":"T","body":"B","priority":"high"}'
    reordered = b'{ "priority": "high",\n  "body": "B", "title": "T", "level": "realm" }'
    content_type = {"Content-Type": "application/json"}
    first = await api.client.post(api.base, content=compact, headers=keyed(key, **content_type))
    assert first.status_code == 201, first.text
    again = await api.client.post(api.base, content=reordered, headers=keyed(key, **content_type))
    assert_replay_of(first, again)
    assert len(await directive_ids(api)) == 1


def test_the_fingerprint_ignores_key_order_but_not_values() -> None:
    path = "/v1/realms/r/directives"
    a = fingerprint("POST", path, None, b'{"a": 1, "b": {"c": 2, "d": 3}}')
    assert a == fingerprint("POST", path, None, b'{"b":{"d":3,"c":2},"a":1}')
    assert a != fingerprint("POST", path, None, b'{"a": 2, "b": {"c": 2, "d": 3}}')
    assert a != fingerprint("PATCH", path, None, b'{"a": 1, "b": {"c": 2, "d": 3}}')
    assert a != fingerprint("POST", path, '"1"', b'{"a": 1, "b": {"c": 2, "d": 3}}')


# --- failed first attempts are not stored ------------------------------------------------------


async def test_a_stale_first_attempt_is_not_stored_so_its_retry_runs_afresh(api: Api) -> None:
    node = await api.create()
    url = f"{api.base}/{node['id']}"
    headers = keyed(new_key(), **if_match(2))
    stale = await api.client.patch(url, json={"title": "Mine"}, headers=headers)
    assert_problem(stale, 412, "stale-revision")
    await api.patch(node, priority="high")  # now the node is at revision 2
    retried = await api.client.patch(url, json={"title": "Mine"}, headers=headers)
    assert retried.status_code == 200, retried.text
    assert REPLAYED not in retried.headers
    assert (retried.json()["revision"], retried.json()["title"]) == (3, "Mine")
    again = await api.client.patch(url, json={"title": "Mine"}, headers=headers)
    assert_replay_of(retried, again)


async def test_an_invalid_first_create_is_not_stored_so_a_fixed_retry_runs(api: Api) -> None:
    agent = await api.child(await api.create(), level="agent")
    key = new_key()
    invalid = await api.client.post(
        api.base, json=create_body(level="team", parent_id=agent["id"]), headers=keyed(key)
    )
    assert_problem(invalid, 422, "invalid-hierarchy")
    fixed = await api.client.post(
        api.base, json=create_body(level="agent", parent_id=agent["id"]), headers=keyed(key)
    )
    assert fixed.status_code == 201, fixed.text
    assert REPLAYED not in fixed.headers
    assert len(await directive_ids(api)) == 3


async def test_a_refused_status_change_is_retried_afresh_once_its_cause_is_gone(api: Api) -> None:
    parent = await api.create()
    child = await api.child(parent)
    url = f"{api.base}/{parent['id']}"
    headers = keyed(new_key(), **if_match(parent["revision"]))
    refused = await api.client.patch(url, json={"status": "completed"}, headers=headers)
    assert_problem(refused, 409, "has-open-children")
    await api.patch(child, status="completed")
    retried = await api.client.patch(url, json={"status": "completed"}, headers=headers)
    assert retried.status_code == 200, retried.text
    assert REPLAYED not in retried.headers
    assert retried.json()["status"] == "completed"


# --- scope: caller key, path, method ---------------------------------------------------------


async def _operator_key(api: Api) -> str:
    body = {"role": "operator", "realms": [api.realm], "name": "idem-operator"}
    response = await api.client.post("/v1/keys", json=body)
    assert response.status_code == 201, response.text
    secret: str = response.json()["key"]
    return secret


async def test_the_key_is_scoped_to_the_caller_key(api: Api) -> None:
    operator = await _operator_key(api)
    key = new_key()
    mine = await api.client.post(api.base, json=create_body(), headers=keyed(key))
    theirs = await api.client.post(
        api.base,
        json=create_body(),
        headers=keyed(key, Authorization=f"Bearer {operator}"),
    )
    for response in (mine, theirs):
        assert response.status_code == 201, response.text
        assert REPLAYED not in response.headers
    assert mine.json()["id"] != theirs.json()["id"]
    assert len(await directive_ids(api)) == 2


async def test_the_key_is_scoped_to_the_path(api: Api) -> None:
    key = new_key()
    elsewhere = await other_realm(api)
    here = await api.client.post(api.base, json=create_body(), headers=keyed(key))
    there = await api.client.post(elsewhere.base, json=create_body(), headers=keyed(key))
    node = here.json()
    await api.patch(node, title="Second")
    rollback = await api.client.post(
        f"{api.base}/{node['id']}/rollback", json={"version": 1}, headers=keyed(key, **if_match(2))
    )
    for response in (here, there, rollback):
        assert response.status_code in (200, 201), response.text
        assert REPLAYED not in response.headers
    assert len(await directive_ids(elsewhere)) == 1


async def test_the_key_is_scoped_to_the_method(api: Api) -> None:
    node = await api.create()
    key = new_key()
    url = f"{api.base}/{node['id']}"
    patched = await api.client.patch(url, json={"title": "New"}, headers=keyed(key, **if_match(1)))
    assert patched.status_code == 200, patched.text
    deleted = await _deactivate(api, node, keyed(key, **if_match(2)))
    assert deleted.status_code == 204, deleted.text
    assert REPLAYED not in deleted.headers
    current = await api.get(node["id"])
    assert (current["revision"], current["active_version"]) == (3, None)


@pytest.mark.parametrize(
    "bad_key", ["", "k" * 256, "tab\there", "bell\x07", "del\x7f", "caf\u00e9"]
)
async def test_a_malformed_idempotency_key_is_400_and_writes_nothing(
    api: Api, bad_key: str
) -> None:
    raw = bad_key.encode("utf-8")
    response = await api.client.post(
        api.base, json=create_body(), headers=[(b"Idempotency-Key", raw)]
    )
    assert_problem(response, 400, "invalid-request")
    assert await directive_ids(api) == []


async def test_the_longest_idempotency_key_is_accepted(api: Api) -> None:
    key = "k" * 255
    first = await api.client.post(api.base, json=create_body(), headers=keyed(key))
    assert first.status_code == 201, first.text
    again = await api.client.post(api.base, json=create_body(), headers=keyed(key))
    assert_replay_of(first, again)


# --- concurrency (PostgreSQL: SQLite runs one transaction at a time) --------------------------


@pytest.fixture
def pg_only(backend: str) -> None:
    if backend != "postgres":
        pytest.skip("concurrent transactions: PostgreSQL only (SQLite runs one at a time)")


@asynccontextmanager
async def racing_api(settings: Settings, realm_id: str) -> AsyncIterator[Api]:
    """The realm through an app served on this event loop, so that requests truly overlap.

    (The shared test client hands each request to a portal thread, one at a time.) Entered
    in the test itself: the app's lifespan must end in the task that began it.
    """
    app = create_app(settings)
    async with app.lifespan():
        # Litestar's precise ASGI message types do not match httpx's loose ones; it is ASGI.
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://charter.test", headers=headers
        ) as http:
            yield Api(cast("AsyncTestClient[Litestar]", http), realm_id)


@pytest.mark.usefixtures("pg_only")
async def test_a_dozen_concurrent_duplicates_create_exactly_one_directive(
    settings: Settings, realm: str
) -> None:
    async with racing_api(settings, realm) as racing:
        await _a_dozen_at_once(racing)


async def _a_dozen_at_once(racing: Api) -> None:
    key = new_key()

    async def one() -> Response:
        return await racing.client.post(racing.base, json=create_body(), headers=keyed(key))

    responses = await asyncio.wait_for(
        asyncio.gather(*(one() for _ in range(12))), HANG_GUARD_SECONDS
    )
    created = [r for r in responses if r.status_code == 201]
    assert created, [r.text for r in responses]
    for response in responses:
        if response.status_code != 201:
            assert_problem(response, 409, "idempotency-key-in-use")
    assert len({r.json()["id"] for r in created}) == 1
    assert sum(REPLAYED not in r.headers for r in created) == 1
    assert await directive_ids(racing) == [created[0].json()["id"]]
    assert [e["type"] for e in await racing.events()] == ["directive.created"]


class _FirstAttemptFailed(Exception):
    pass


@pytest.mark.usefixtures("pg_only")
async def test_a_request_while_the_key_is_claimed_in_flight_is_409(
    settings: Settings, realm: str, pg_db: Database
) -> None:
    async with racing_api(settings, realm) as racing:
        await _while_claimed(racing, pg_db)


async def _while_claimed(racing: Api, pg_db: Database) -> None:
    body = json.dumps(create_body()).encode()
    headers = keyed(new_key(), **{"Content-Type": "application/json"})
    with pytest.raises(_FirstAttemptFailed):
        await _claim_then_fail(racing, pg_db, body, headers)
    assert await directive_ids(racing) == []
    retried = await racing.client.post(racing.base, content=body, headers=headers)
    assert retried.status_code == 201, retried.text
    assert REPLAYED not in retried.headers


async def _claim_then_fail(
    racing: Api, pg_db: Database, body: bytes, headers: dict[str, str]
) -> None:
    """Claim the key as the API would, send the request meanwhile, then roll back."""
    scope = Scope(racing.realm, BOOTSTRAP_KEY_ID, "POST", racing.base, headers["Idempotency-Key"])
    async with pg_db.transaction(racing.realm) as conn:
        print_ = fingerprint("POST", racing.base, None, body)
        assert await replay_or_claim(conn, scope, print_) is None
        in_flight = await asyncio.wait_for(
            racing.client.post(racing.base, content=body, headers=headers), HANG_GUARD_SECONDS
        )
        assert_problem(in_flight, 409, "idempotency-key-in-use")
        raise _FirstAttemptFailed  # the first attempt fails: it leaves nothing behind


# --- purge -----------------------------------------------------------------------------------


def _stored() -> Stored:
    return Stored(fingerprint="0" * 64, status=201, headers={}, body=b"{}")


async def test_purged_records_are_gone_and_a_retry_after_purge_runs_afresh(
    api: Api, db: Database
) -> None:
    key = new_key()
    scope = Scope(api.realm, BOOTSTRAP_KEY_ID, "POST", api.base, key)
    first = await api.client.post(api.base, json=create_body(), headers=keyed(key))
    assert first.status_code == 201, first.text
    async with db.transaction(api.realm) as conn:
        assert await idempotency.purge(conn, api.realm, utcnow() - timedelta(hours=24)) == 0
        assert await idempotency.find(conn, scope) is not None
    async with db.transaction(api.realm) as conn:
        assert await idempotency.purge(conn, api.realm, utcnow() + timedelta(seconds=1)) == 1
        assert await idempotency.find(conn, scope) is None
    again = await api.client.post(api.base, json=create_body(), headers=keyed(key))
    assert again.status_code == 201, again.text
    assert REPLAYED not in again.headers
    assert again.json()["id"] != first.json()["id"]
    assert len(await directive_ids(api)) == 2


async def test_the_purge_task_drops_records_past_the_retention_and_keeps_the_rest(
    api: Api, db: Database
) -> None:
    fresh = Scope(api.realm, BOOTSTRAP_KEY_ID, "POST", api.base, new_key())
    old = Scope(api.realm, BOOTSTRAP_KEY_ID, "POST", api.base, new_key())
    old_global = Scope("", BOOTSTRAP_KEY_ID, "POST", "/v1/realms", new_key())
    async with db.transaction(api.realm) as conn:
        await idempotency.save(conn, fresh, _stored(), utcnow() - timedelta(hours=23))
        await idempotency.save(conn, old, _stored(), utcnow() - timedelta(hours=25))
    async with db.transaction("") as conn:
        await idempotency.save(conn, old_global, _stored(), utcnow() - timedelta(hours=25))

    async def gone(scope: Scope) -> bool:
        async with db.transaction(scope.realm_id) as conn:
            return await idempotency.find(conn, scope) is None

    task = asyncio.create_task(purge_idempotency_records(db, keep_hours=24.0))
    try:
        async with asyncio.timeout(HANG_GUARD_SECONDS):
            while not (await gone(old) and await gone(old_global)):
                assert not task.done(), task
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not await gone(fresh)
