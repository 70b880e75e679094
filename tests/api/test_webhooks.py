"""Webhooks through the API, on both backends: create (the secret once), list, show, delete,
the refusals (bad URLs, unknown types, the SSRF guard), and deliveries driven by hand.

The shared test app runs no delivery loop (tests/conftest.py); these tests run its deliverer's
passes themselves, so what is sent, and when, is theirs to check. Delivery over time, outages
and crashes are in tests/live/test_webhook_delivery.py.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from charter.app import create_app
from charter.settings import Settings
from tests.support.api import ADMIN_KEY, Api
from tests.support.checks import if_match
from tests.support.receiver import Receiver
from tests.support.refusals import MARKER, assert_problem
from tests.support.webhooks import PUBLIC_URL, deliver


def hooks(api: Api) -> str:
    return f"/v1/realms/{api.realm}/webhooks"


async def add(api: Api, url: str, events: list[str] | None = None, **more: Any) -> dict[str, Any]:
    body = {"url": url, "events": events or ["*"], **more}
    response = await api.client.post(hooks(api), json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


@pytest.fixture(autouse=True)
async def leave_no_webhook(api: Api) -> AsyncIterator[None]:
    """Server processes that later tests start on this database would retry them."""
    yield
    for hook in (await api.client.get(hooks(api))).json()["items"]:
        await api.client.delete(f"{hooks(api)}/{hook['id']}")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as running:
        yield running


async def test_create_shows_a_standard_webhooks_secret_once(api: Api) -> None:
    created = await add(api, PUBLIC_URL, ["directive.created"], agents=["coder-1"])
    assert created["id"].startswith("whk_")
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert created["events"] == ["directive.created"]
    assert created["agents"] == ["coder-1"]
    assert created["state"] == "active"
    shown = await api.client.get(f"{hooks(api)}/{created['id']}")
    assert shown.status_code == 200, shown.text
    assert "secret" not in shown.json()
    assert secret not in shown.text
    listed = await api.client.get(hooks(api))
    assert [h["id"] for h in listed.json()["items"]] == [created["id"]]
    assert secret not in listed.text


async def test_a_replayed_create_does_not_show_the_secret_again(api: Api) -> None:
    body = {"url": PUBLIC_URL, "events": ["*"]}
    headers = {"Idempotency-Key": "hook-1"}
    first = await api.client.post(hooks(api), json=body, headers=headers)
    again = await api.client.post(hooks(api), json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["secret"] is None
    assert len((await api.client.get(hooks(api))).json()["items"]) == 1


async def test_delete_removes_it(api: Api) -> None:
    created = await add(api, PUBLIC_URL)
    gone = await api.client.delete(f"{hooks(api)}/{created['id']}")
    assert gone.status_code == 204
    assert_problem(await api.client.get(f"{hooks(api)}/{created['id']}"), 404, "not-found")
    assert_problem(await api.client.delete(f"{hooks(api)}/{created['id']}"), 404, "not-found")
    assert (await api.client.get(hooks(api))).json()["items"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://93.184.215.14/x", "events": ["*"]},
        {"url": "https:///nohost", "events": ["*"]},
        {"url": "https://user:pw@93.184.215.14/x", "events": ["*"]},
        {"url": "https://93.184.215.14:99999/x", "events": ["*"]},
        {"url": "https://93.184.215.14/x y", "events": ["*"]},
        {"url": f"https://93.184.215.14/{MARKER}\u00e9", "events": ["*"]},
        {"url": "https://93.184.215.14/" + "a" * 2100, "events": ["*"]},
        {"url": PUBLIC_URL, "events": []},
        {"url": PUBLIC_URL, "events": ["directive.nope"]},
        {"url": PUBLIC_URL, "events": ["*", "directive.created"]},
        {"url": PUBLIC_URL, "events": "*"},
        {"url": PUBLIC_URL, "events": ["*"], "agents": ["bad agent"]},
        {"url": PUBLIC_URL, "events": ["*"], "agents": []},
        {"url": PUBLIC_URL, "events": ["*"], "secret": "whsec_mine"},
        {"events": ["*"]},
    ],
)
async def test_bad_webhooks_are_refused_and_nothing_is_made(api: Api, body: Any) -> None:
    response = await api.client.post(hooks(api), json=body)
    assert_problem(response, 400, "invalid-request")
    assert (await api.client.get(hooks(api))).json()["items"] == []


async def test_unknown_and_foreign_webhooks_are_not_found(api: Api, realm: str) -> None:
    created = await add(api, PUBLIC_URL)
    for path in (
        f"{hooks(api)}/whk_nope",
        f"{hooks(api)}/whk_{'0' * 26}",
        f"/v1/realms/{realm}-x/webhooks/{created['id']}",
    ):
        assert_problem(await api.client.get(path), 404, "not-found")
    missing = f"{hooks(api)}/{created['id']}/deliveries/dlv_{'0' * 26}/retry"
    assert_problem(await api.client.post(missing), 404, "not-found")
    bad = f"{hooks(api)}/{created['id']}/deliveries/nope/retry"
    assert_problem(await api.client.post(bad), 404, "not-found")


# --- the SSRF guard at creation: an app that does not allow private targets ---------------------


@pytest.fixture(scope="module")
async def guarded(settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    strict = dataclasses.replace(settings, webhook_allow_private=False)
    app = create_app(strict, deliver_webhooks=False)
    async with AsyncTestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
        yield client


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://127.9.9.9/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://10.1.2.3/hook",
        "http://172.16.0.1/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[fe80::1]/hook",
        "http://[fd00::1]/hook",
        "http://224.0.0.1/hook",
        "http://0.0.0.0/hook",
        "http://[::]/hook",
        "http://100.64.0.1/hook",
        "http://localhost:8080/hook",  # resolves to loopback
        "http://charter-no-such-host.invalid/hook",  # resolves to nothing
        # Names no resolver takes (an empty label, a bad punycode one): were a 500.
        "http://a..b/hook",
        "http://xn--/hook",
    ],
)
async def test_private_targets_are_refused_at_creation(
    guarded: AsyncTestClient[Litestar], realm: str, url: str
) -> None:
    base = f"/v1/realms/{realm}/webhooks"
    response = await guarded.post(base, json={"url": url, "events": ["*"]})
    assert_problem(response, 422, "target-refused")
    assert (await guarded.get(base)).json()["items"] == []


async def test_a_public_target_is_accepted_by_the_guarded_app(
    guarded: AsyncTestClient[Litestar], realm: str
) -> None:
    response = await guarded.post(
        f"/v1/realms/{realm}/webhooks", json={"url": PUBLIC_URL, "events": ["*"]}
    )
    assert response.status_code == 201, response.text


# --- deliveries, one pass at a time -------------------------------------------------------------


async def test_a_delivery_is_the_feed_event_signed(api: Api, receiver: Receiver) -> None:
    created = await add(api, receiver.url)
    receiver.secret = created["secret"]
    node = await api.create(title=MARKER, body=MARKER, owner_agent_id="coder-1")
    await api.patch(node, body=f"{MARKER} two", message=MARKER)
    await deliver(api.client)
    got = await receiver.wait_for(2)
    feed = await api.events()
    assert [json.loads(r.body) for r in got] == feed
    # Byte for byte as the feed encodes it, and never directive text.
    listed = (await api.client.get(f"/v1/realms/{api.realm}/events")).content
    for received in got:
        assert received.body in listed
        assert MARKER.encode() not in received.body
    assert [r.message_id for r in got] == [
        f"msg_{created['id'].removeprefix('whk_')}_{e['seq']}" for e in feed
    ]
    assert receiver.forged == []
    assert got[0].headers["content-type"] == "application/json"


async def test_only_wanted_events_are_sent(api: Api, receiver: Receiver) -> None:
    created = await add(api, receiver.url, ["directive.version_created"], agents=["coder-2"])
    receiver.secret = created["secret"]
    mine = await api.create(owner_agent_id="coder-2")
    other = await api.create(owner_agent_id="coder-9")
    await api.patch(other, body="changed")
    mine = await api.patch(mine, priority="high")
    await api.patch(mine, body="changed")
    await deliver(api.client)
    await receiver.wait_for(1)
    await deliver(api.client)  # nothing more is due
    assert [r.event["type"] for r in receiver.got] == ["directive.version_created"]
    assert receiver.got[0].event["directive_id"] == mine["id"]
    shown = (await api.client.get(f"{hooks(api)}/{created['id']}")).json()
    assert shown["delivered_seq"] == (await api.events())[-1]["seq"]


WORK_EVENTS = [
    "directive.claimed",
    "directive.claim_expired",
    "directive.succeeded",
    "directive.failed",
]


async def _claim(api: Api, node: dict[str, Any], agent: str) -> str:
    made = await api.client.post(
        f"{api.base}/{node['id']}/claims", json={"agent_id": agent, "lease_seconds": 60}
    )
    assert made.status_code == 201, made.text
    claim_id: str = made.json()["id"]
    return claim_id


async def _finish(api: Api, node: dict[str, Any], claim_id: str, outcome: str) -> None:
    done = await api.client.post(
        f"{api.base}/{node['id']}/claims/{claim_id}/finish", json={"outcome": outcome}
    )
    assert done.status_code == 200, done.text


async def test_an_agents_filter_gets_the_work_its_agents_hold_or_own(
    api: Api, receiver: Receiver
) -> None:
    # Work events affect no agent's prompt: the filter matches their holder and owner.
    created = await add(api, receiver.url, WORK_EVENTS, agents=["coder-3"])
    receiver.secret = created["secret"]
    owned = await api.create(owner_agent_id="coder-3")
    held = await api.create(owner_agent_id="coder-8")
    neither = await api.create(owner_agent_id="coder-8")
    by_runner = await _claim(api, owned, "runner-1")
    await _claim(api, held, "coder-3")
    elsewhere = await _claim(api, neither, "runner-2")
    await _finish(api, owned, by_runner, "succeeded")
    await _finish(api, neither, elsewhere, "failed")
    current = await api.get(held["id"])
    gone = await api.client.delete(
        f"{api.base}/{held['id']}", headers=if_match(current["revision"])
    )
    assert gone.status_code == 204, gone.text  # releases coder-3's claim: claim_expired
    await deliver(api.client)
    await receiver.wait_for(4)
    await deliver(api.client)  # nothing more is due
    assert [(r.event["type"], r.event["directive_id"]) for r in receiver.got] == [
        ("directive.claimed", owned["id"]),
        ("directive.claimed", held["id"]),
        ("directive.succeeded", owned["id"]),
        ("directive.claim_expired", held["id"]),
    ]
    assert all(r.event["affected_agents"] == [] for r in receiver.got)
    assert receiver.forged == []
    shown = (await api.client.get(f"{hooks(api)}/{created['id']}")).json()
    assert shown["delivered_seq"] == (await api.events())[-1]["seq"]


async def test_the_log_shows_each_attempt_and_a_retry_resends_it(
    api: Api, receiver: Receiver
) -> None:
    created = await add(api, receiver.url)
    receiver.secret = created["secret"]
    receiver.status = 500
    await api.create()
    await deliver(api.client)
    log = await api.client.get(f"{hooks(api)}/{created['id']}/deliveries")
    assert log.status_code == 200, log.text
    [failed] = log.json()["items"]
    assert failed["status_code"] == 500
    assert failed["error"] == "status"
    assert failed["attempt"] == 1
    assert failed["latency_ms"] > 0
    shown = (await api.client.get(f"{hooks(api)}/{created['id']}")).json()
    assert shown["failures"] == 1
    assert shown["delivered_seq"] == 0
    assert shown["next_attempt_at"] > failed["attempted_at"]

    receiver.status = 204
    retried = await api.client.post(f"{hooks(api)}/{created['id']}/deliveries/{failed['id']}/retry")
    assert retried.status_code == 201, retried.text
    assert retried.json()["status_code"] == 204
    assert retried.json()["manual"] is True
    assert retried.json()["attempt"] == 2
    [got] = await receiver.wait_for(1)
    assert got.message_id == failed["message_id"]
    scraped = (await api.client.get("/metrics")).text
    for outcome in ("failed", "delivered"):
        sample = f'charter_webhook_deliveries_total{{outcome="{outcome}"}} '
        [line] = [line for line in scraped.splitlines() if line.startswith(sample)]
        assert float(line.removeprefix(sample)) >= 1
    log = (await api.client.get(f"{hooks(api)}/{created['id']}/deliveries")).json()["items"]
    assert [a["id"] for a in log] == [retried.json()["id"], failed["id"]]


async def test_a_deleted_webhook_gets_nothing_more(api: Api, receiver: Receiver) -> None:
    created = await add(api, receiver.url)
    receiver.secret = created["secret"]
    await api.client.delete(f"{hooks(api)}/{created['id']}")
    await api.create()
    await deliver(api.client)
    assert receiver.requests == 0
