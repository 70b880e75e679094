"""The console's rollout, schedule, webhook and claim pages in-process, on both backends:
each form does what the API's route does, a stale one changes nothing and says so, bad input
is a 4xx page that changes nothing, and a reader sees no control and is refused its posts."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.support.api import Api
from tests.support.console import Browser, browsing, sign_in
from tests.support.receiver import Receiver
from tests.support.webhooks import deliver


@pytest.fixture
def browser(client: AsyncTestClient[Litestar]) -> Iterator[Browser]:
    yield from browsing(client)


@pytest.fixture
async def no_webhook_left(api: Api) -> AsyncIterator[None]:
    """Server processes that later tests start on this database would deliver to them."""
    yield
    base = f"/v1/realms/{api.realm}/webhooks"
    for hook in (await api.client.get(base)).json()["items"]:
        await api.client.delete(f"{base}/{hook['id']}")


async def _drafted(api: Api) -> dict[str, Any]:
    """A node with version 1 active and a version 2 that nothing serves yet."""
    node = await api.create(title="Root", body="One", owner_agent_id="pilot")
    await api.patch(node, body="Two", activate=False, message="draft")
    return await api.get(node["id"])


WIDE_DIGITS = "\uff12\uff10\uff13\uff10"  # 2030 in full-width digits: not ASCII


def _page(base: str, node: dict[str, Any]) -> str:
    return f"{base}/directives/{node['id']}"


def _cas(token: str, node: dict[str, Any], **fields: str) -> dict[str, str]:
    return {"csrf": token, "expected_revision": str(node["revision"]), **fields}


async def _outcome(api: Api, agent: str, value: float) -> None:
    prompt = await api.client.get(f"/v1/realms/{api.realm}/agents/{agent}/prompt")
    body = {
        "composition_id": prompt.json()["composition_id"],
        "agent_id": agent,
        "metric": "ok",
        "value": value,
    }
    answer = await api.client.post(f"/v1/realms/{api.realm}/outcomes", json=body)
    assert answer.status_code == 202, answer.text


async def test_a_rollout_started_changed_promoted_and_aborted(browser: Browser, api: Api) -> None:
    node = await _drafted(api)
    token = await sign_in(browser, api, "operator")
    base = f"/console/realms/{api.realm}"
    url = _page(base, node)
    shown = (await browser.get(url)).text
    assert ">Start rollout<" in shown
    assert ">Promote<" not in shown
    started = await browser.post(
        f"{url}/rollout", data=_cas(token, node, version="2", percent="100")
    )
    assert started.status_code == 303, started.text
    assert "done=rollout-started" in started.headers["location"]
    node = await api.get(node["id"])
    assert (node["rollout"]["version"], node["rollout"]["percent"]) == (2, 100)
    for value in (1.0, 3.0):
        await _outcome(api, "pilot", value)
    shown = (await browser.get(url)).text
    for control in (">Promote<", ">Abort rollout<", ">Change percent<"):
        assert control in shown
    assert ">Start rollout<" not in shown
    arms = re.search(r"<code>ok</code></td>\s*<td[^>]*>(\d+)</td><td[^>]*>([^<]+)</td>", shown)
    assert arms is not None
    assert (arms.group(1), arms.group(2)) == ("2", "2 (1.414)")  # n, mean (sd)
    tree = (await browser.get(base)).text
    assert "rollout v2 at 100 %" in tree
    # At 100 % the owner sees the candidate: its prompt's layer says so, with the version.
    agent = (await browser.get(f"/console/realms/{api.realm}/agents/pilot")).text
    assert re.search(r'<td data-label="Version">2</td><td data-label="Arm">candidate</td>', agent)

    changed = await browser.post(f"{url}/rollout/percent", data=_cas(token, node, percent="12.5"))
    assert "done=percent-changed" in changed.headers["location"]
    stale = node
    node = await api.get(node["id"])
    assert node["rollout"]["percent"] == 12.5
    # A form showing an older revision changes nothing and says so.
    late = await browser.post(f"{url}/rollout/promote", data=_cas(token, stale))
    assert "done=stale-release" in late.headers["location"]
    assert (await api.get(node["id"]))["revision"] == node["revision"]
    assert "nothing was changed" in (await browser.get(late.headers["location"])).text

    promoted = await browser.post(f"{url}/rollout/promote", data=_cas(token, node))
    assert "done=promoted" in promoted.headers["location"]
    node = await api.get(node["id"])
    assert (node["active_version"], node["rollout"]) == (2, None)
    again = await browser.post(f"{url}/rollout", data=_cas(token, node, version="1", percent="5"))
    assert "done=rollout-started" in again.headers["location"]
    node = await api.get(node["id"])
    aborted = await browser.post(f"{url}/rollout/abort", data=_cas(token, node, message="no"))
    assert "done=aborted" in aborted.headers["location"]
    node = await api.get(node["id"])
    assert (node["active_version"], node["rollout"]) == (2, None)
    types = [e["type"] for e in await api.events()]
    for kind in ("started", "changed", "promoted", "aborted"):
        assert f"directive.rollout_{kind}" in types


async def test_schedules_added_and_cancelled(browser: Browser, api: Api) -> None:
    node = await _drafted(api)
    token = await sign_in(browser, api, "operator")
    url = _page(f"/console/realms/{api.realm}", node)
    at = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    added = await browser.post(
        f"{url}/schedules",
        data=_cas(token, node, at=at, action="activate", value="2", only_if_unchanged="1"),
    )
    assert added.status_code == 303, added.text
    await browser.post(f"{url}/schedules", data=_cas(token, node, at=at, action="promote"))
    listed = (await api.client.get(f"{api.base}/{node['id']}/schedules")).json()["items"]
    assert [(s["action"], s["state"], s["expected_revision"]) for s in listed] == [
        ({"activate": 2}, "pending", node["revision"]),
        ({"promote": True}, "pending", None),
    ]
    assert listed[0]["at"].startswith(at)  # read as UTC
    shown = (await browser.get(url)).text
    assert shown.count(">Cancel schedule<") == 2
    cancel = f"{url}/schedules/{listed[0]['id']}/cancel"
    assert (await browser.post(cancel, data={"csrf": token})).status_code == 303
    states = [
        s["state"]
        for s in (await api.client.get(f"{api.base}/{node['id']}/schedules")).json()["items"]
    ]
    assert states == ["cancelled", "pending"]
    twice = await browser.post(cancel, data={"csrf": token})
    assert twice.status_code == 409
    assert (await browser.get(url)).text.count(">Cancel schedule<") == 1


async def test_bad_release_forms_are_4xx_pages_and_change_nothing(
    browser: Browser, api: Api
) -> None:
    node = await _drafted(api)
    token = await sign_in(browser, api, "operator")
    url = _page(f"/console/realms/{api.realm}", node)
    at = "2030-01-31T09:00"
    bad: list[tuple[str, dict[str, str], int]] = [
        ("/rollout", _cas(token, node, version="2", percent="abc"), 400),
        ("/rollout", _cas(token, node, version="2", percent="101"), 400),
        ("/rollout", _cas(token, node, version="2", percent="1.234"), 400),
        ("/rollout", _cas(token, node, version="2", percent=""), 400),
        ("/rollout", _cas(token, node, version="2", percent="nan"), 400),
        ("/rollout", _cas(token, node, version="x", percent="5"), 400),
        ("/rollout", _cas(token, node, version="1", percent="5"), 400),  # already active
        ("/rollout", _cas(token, node, version="9", percent="5"), 404),
        ("/rollout", _cas(token, node, version="2", percent="5", expected_revision=""), 400),
        ("/rollout", _cas(token, node, version="2", percent="5", csrf=""), 403),
        ("/rollout/percent", _cas(token, node, percent="5"), 404),  # nothing running
        ("/rollout/promote", _cas(token, node), 404),
        ("/rollout/abort", _cas(token, node), 404),
        ("/schedules", _cas(token, node, at="soon", action="promote"), 400),
        ("/schedules", _cas(token, node, at="", action="promote"), 400),
        ("/schedules", _cas(token, node, at="0001-01-01T00:00+05:00", action="promote"), 400),
        ("/schedules", _cas(token, node, at="2030-02-30T09:00", action="promote"), 400),
        ("/schedules", _cas(token, node, at=WIDE_DIGITS + "-01-31T09:00", action="promote"), 400),
        ("/schedules", _cas(token, node, at=at, action="explode"), 400),
        ("/schedules", _cas(token, node, at=at, action="activate", value="two"), 400),
        ("/schedules", _cas(token, node, at=at, action="activate", value="0"), 400),
        ("/schedules", _cas(token, node, at=at, action="status", value="asleep"), 400),
        ("/schedules", _cas(token, node, at=at, action="rollout", value="200"), 400),
        ("/schedules", _cas(token, node, at=at, action="promote", csrf="wrong"), 403),
        ("/schedules/not-an-id/cancel", {"csrf": token}, 400),
        (f"/schedules/sch_{'0' * 26}/cancel", {"csrf": token}, 404),
    ]
    for path, data, status in bad:
        answer = await browser.post(url + path, data=data)
        assert answer.status_code == status, (path, data, answer.text[:300])
        assert answer.headers["content-type"].startswith("text/html")
    after = await api.get(node["id"])
    assert (after["revision"], after["rollout"]) == (node["revision"], None)
    listed = (await api.client.get(f"{api.base}/{node['id']}/schedules")).json()["items"]
    assert listed == []


async def test_a_reader_sees_no_release_controls_and_is_refused(browser: Browser, api: Api) -> None:
    node = await _drafted(api)
    rolling = await api.client.put(
        f"{api.base}/{node['id']}/rollout",
        json={"version": 2, "percent": 50, "expected_revision": node["revision"]},
    )
    assert rolling.status_code == 200, rolling.text
    node = await api.get(node["id"])
    at = "2030-01-31T09:00"
    made = await api.client.post(
        f"{api.base}/{node['id']}/schedules", json={"at": f"{at}:00Z", "action": {"promote": True}}
    )
    token = await sign_in(browser, api, "reader")
    base = f"/console/realms/{api.realm}"
    url = _page(base, node)
    shown = (await browser.get(url)).text
    assert "rollout v2 at 50 %" in shown  # it sees the rollout and the schedule
    assert "promote" in shown
    for control in (
        "Start rollout",
        "Change percent",
        "Promote<",
        "Abort rollout",
        "Add schedule",
        "Cancel schedule",
        ">Webhooks<",
    ):
        assert control not in shown, control
    for path, data in (
        ("/rollout", _cas(token, node, version="2", percent="5")),
        ("/rollout/percent", _cas(token, node, percent="5")),
        ("/rollout/promote", _cas(token, node)),
        ("/rollout/abort", _cas(token, node)),
        ("/schedules", _cas(token, node, at=at, action="promote")),
        (f"/schedules/{made.json()['id']}/cancel", {"csrf": token}),
    ):
        assert (await browser.post(url + path, data=data)).status_code == 403, path
    assert (await api.get(node["id"]))["revision"] == node["revision"]
    assert (await browser.get(f"{base}/webhooks")).status_code == 403
    added = await browser.post(f"{base}/webhooks", data={"csrf": token, "url": "https://x.example"})
    assert added.status_code == 403
    assert (await browser.get(f"{base}/claims")).status_code == 200


@pytest.mark.usefixtures("no_webhook_left")
async def test_webhooks_added_shown_retried_and_deleted(browser: Browser, api: Api) -> None:
    token = await sign_in(browser, api, "operator")
    base = f"/console/realms/{api.realm}/webhooks"
    async with Receiver() as receiver:
        receiver.status = 500
        added = await browser.post(
            base, data={"csrf": token, "url": receiver.url, "events": "directive.created"}
        )
        assert added.status_code == 201, added.text
        secret = re.search(r'id="wh-secret"[^>]*value="(whsec_[^"]+)"', added.text)
        assert secret is not None
        receiver.secret = secret.group(1)
        [hook] = (await api.client.get(f"/v1/realms/{api.realm}/webhooks")).json()["items"]
        assert (hook["url"], hook["events"]) == (receiver.url, ["directive.created"])
        listing = (await browser.get(base)).text
        assert secret.group(1) not in listing  # shown once
        assert receiver.url in listing
        await api.create(title="Root", body="One")
        await deliver(api.client)
        log = (await browser.get(f"{base}/{hook['id']}")).text
        assert "HTTP 500" in log
        [delivery] = re.findall(r"/deliveries/(dlv_[0-9a-z]+)/retry", log)
        receiver.status = 204
        retried = await browser.post(
            f"{base}/{hook['id']}/deliveries/{delivery}/retry", data={"csrf": token}
        )
        assert retried.status_code == 303, retried.text
        [got] = await receiver.wait_for(1)
        assert got.event["type"] == "directive.created"
        log = (await browser.get(retried.headers["location"])).text
        assert "HTTP 204" in log
        assert "(manual)" in log
    for path, data, status in (
        (base, {"csrf": token, "url": ""}, 400),
        (base, {"csrf": token, "url": "ftp://x.example/"}, 400),
        (base, {"csrf": token, "url": "https://x.example/", "events": "no.such.event"}, 400),
        (base, {"csrf": token, "url": "https://x.example/", "agents": "bad agent!"}, 400),
        (base, {"csrf": "", "url": "https://x.example/"}, 403),
        (f"{base}/whk_{'0' * 26}/delete", {"csrf": token}, 404),
        (f"{base}/nope/delete", {"csrf": token}, 404),
        (f"{base}/{hook['id']}/deliveries/nope/retry", {"csrf": token}, 404),
        (f"{base}/{hook['id']}/delete", {"csrf": "wrong"}, 403),
    ):
        answer = await browser.post(path, data=data)
        assert answer.status_code == status, (path, data, answer.text[:300])
        assert answer.headers["content-type"].startswith("text/html")
    assert len((await api.client.get(f"/v1/realms/{api.realm}/webhooks")).json()["items"]) == 1
    deleted = await browser.post(f"{base}/{hook['id']}/delete", data={"csrf": token})
    assert "done=deleted" in deleted.headers["location"]
    assert (await api.client.get(f"/v1/realms/{api.realm}/webhooks")).json()["items"] == []
    assert (await browser.get(f"{base}/{hook['id']}")).status_code == 404


async def test_live_claims_by_agent(browser: Browser, api: Api) -> None:
    first = await api.create(title="Root", body="One", owner_agent_id="a1")
    second = await api.child(first, title="Task", body="Two", owner_agent_id="a2")
    done = await api.child(first, title="Done", body="Three", owner_agent_id="a2")
    for node, agent in ((first, "a1"), (second, "a2"), (done, "a2")):
        made = await api.client.post(
            f"{api.base}/{node['id']}/claims", json={"agent_id": agent, "lease_seconds": 60}
        )
        assert made.status_code == 201, made.text
        if node is done:
            finish = f"{api.base}/{node['id']}/claims/{made.json()['id']}/finish"
            ended = await api.client.post(finish, json={"outcome": "succeeded"})
            assert ended.status_code == 200, ended.text
    await sign_in(browser, api, "reader")
    base = f"/console/realms/{api.realm}/claims"
    shown = (await browser.get(base)).text
    assert shown.count("/directives/dir_") == 2  # the finished claim is not live
    assert first["id"] in shown
    assert second["id"] in shown
    assert done["id"] not in shown
    assert "a1</a> · 1 live" in shown
    assert "a2</a> · 1 live" in shown
    only = (await browser.get(f"{base}?agent_id=a2")).text
    assert second["id"] in only
    assert first["id"] not in only
    assert (await browser.get(f"{base}?agent_id=bad%20agent")).status_code == 400
