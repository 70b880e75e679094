"""The operator console in Chromium, against a real `charter serve` (DESIGN §11, issue 16).

One browser and one server for the module; every context is cut off from the internet. Each
test signs in with keys of its own, so revoking or signing out never touches another test.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from tests.support.api import new_realm_id
from tests.support.browser import (
    WIDTHS,
    Offline,
    chromium,
    other_origin,
    screenshot,
    serious_violations,
)
from tests.support.live import LiveApi
from tests.support.receiver import Receiver
from tests.support.servers import CharterServer, StartServer

pytestmark = pytest.mark.timeout(180)
WAIT_MS = 15_000


@pytest.fixture(scope="module")
def origins() -> Iterator[tuple[str, str]]:
    """Two pages on other loopback ports: the first is named in CHARTER_CORS_ORIGINS."""
    with other_origin() as allowed, other_origin() as refused:
        yield allowed, refused


@pytest.fixture(scope="module")
async def server(start_server: StartServer, origins: tuple[str, str]) -> CharterServer:
    env = {
        "CHARTER_CORS_ORIGINS": origins[0],
        "CHARTER_HEARTBEAT_SECONDS": "1",
        "CHARTER_WEBHOOK_ALLOW_PRIVATE": "1",  # the release flow's receiver is on loopback
    }
    return await start_server(extra_env=env, args=["--access-log"])


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium(), headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class World:
    server: CharterServer
    realm: str
    root: dict[str, Any]
    team: dict[str, Any]
    paused: dict[str, Any]
    offline: Offline

    def url(self, path: str) -> str:
        return f"{self.server.url}{path}"

    def node_url(self, node: dict[str, Any]) -> str:
        return self.url(f"/console/realms/{self.realm}/directives/{node['id']}")

    async def key(self, role: str, **fields: Any) -> dict[str, Any]:
        async with self.server.http() as http:
            body = {"role": role, "realms": [self.realm], "name": f"console {role}", **fields}
            response = await http.post("/v1/keys", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def revoke(self, key_id: str) -> None:
        async with self.server.http() as http:
            assert (await http.delete(f"/v1/keys/{key_id}")).status_code == 204

    async def node(self, node: dict[str, Any]) -> dict[str, Any]:
        async with self.server.http() as http:
            response = await http.get(f"/v1/realms/{self.realm}/directives/{node['id']}")
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found


@pytest.fixture(scope="module")
async def world(server: CharterServer) -> World:
    realm = new_realm_id()
    async with server.http() as http:
        api = LiveApi(http, realm)
        await api.create_realm()
        root = await api.create(
            title="Ship the product", body="Customers first.", owner_agent_id="pilot"
        )
        team = await api.create(
            level="team",
            parent_id=root["id"],
            title="Support team",
            body="Answer within a day.",
            priority="high",
            owner_agent_id="pilot",
        )
        paused = await api.create(
            level="team",
            parent_id=root["id"],
            title="Research team",
            body="Explore.",
            status="paused",
        )
        await api.create(level="agent", parent_id=paused["id"], title="Lab bot", body="Test.")
        team = await api.patch(team, body="Answer within an hour.", message="faster")
    return World(server, realm, root, team, paused, Offline())


async def _context(browser: Browser, world: World, width: int = 1280) -> BrowserContext:
    context = await browser.new_context(viewport={"width": width, "height": 900})
    return await world.offline.cut(context)


async def _signed_in(browser: Browser, world: World, secret: str, width: int = 1280) -> Page:
    context = await _context(browser, world, width)
    page = await context.new_page()
    await page.goto(world.url("/console"))
    await page.get_by_label("API key").fill(secret)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Realms")).to_be_visible()
    return page


async def test_sign_in_and_the_tree(browser: Browser, world: World) -> None:
    operator = await world.key("operator")
    page = await _signed_in(browser, world, operator["key"])
    context = page.context
    try:
        cookies = await context.cookies()
        [session] = [c for c in cookies if c["name"] == "charter_session"]
        assert session["httpOnly"] is True
        assert session["sameSite"] == "Strict"
        assert session["secure"] is False  # plain HTTP on loopback
        assert operator["key"] not in await page.content()
        assert operator["key"] not in page.url
        assert operator["key"] not in session["value"]
        log = world.server.log.read_text(errors="replace")
        assert '"POST /console/sign-in HTTP/1.1" 303' in log  # the access log is on
        assert operator["key"] not in log
        assert session["value"] not in log

        await page.get_by_role("link", name=world.realm).click()
        tree = page.get_by_role("tree", name="Goal tree")
        await expect(tree).to_be_visible()
        await page.wait_for_load_state("load")  # the deferred script has run: keys are handled
        root = tree.get_by_role("treeitem", name="Ship the product", exact=True)
        research = tree.get_by_role("treeitem", name="Research team", exact=True)
        await expect(root).to_have_attribute("aria-expanded", "true")
        await expect(research).to_have_class(re.compile(r"\bpaused\b"))
        await expect(tree.get_by_role("treeitem", name="Lab bot", exact=True)).to_have_class(
            re.compile(r"\bpaused\b")  # greyed with its paused ancestor
        )
        support = tree.get_by_role("treeitem", name="Support team", exact=True)
        await expect(support).to_contain_text("high")
        await expect(support).to_contain_text("owner pilot")
        await expect(support).to_contain_text("v2")

        # The keyboard: one tab stop, arrows move, Left closes a branch, Enter opens a node.
        await root.focus()
        await page.keyboard.press("ArrowDown")
        await expect(support).to_be_focused()
        await page.keyboard.press("ArrowDown")
        await expect(research).to_be_focused()
        await page.keyboard.press("ArrowLeft")
        await expect(research).to_have_attribute("aria-expanded", "false")
        await expect(tree.get_by_role("treeitem", name="Lab bot", exact=True)).to_be_hidden()
        await page.keyboard.press("ArrowRight")
        await expect(research).to_have_attribute("aria-expanded", "true")
        await page.keyboard.press("ArrowUp")
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("heading", name="Support team", level=1)).to_be_visible()
    finally:
        await context.close()


async def test_an_agent_key_cannot_sign_in(browser: Browser, world: World) -> None:
    agent = await world.key("agent", agent_id="pilot")
    context = await _context(browser, world)
    try:
        page = await context.new_page()
        await page.goto(world.url("/console"))
        await page.get_by_label("API key").fill(agent["key"])
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("alert")).to_contain_text("agent key cannot sign in")
        assert [c for c in await context.cookies() if c["name"] == "charter_session"] == []
        assert agent["key"] not in await page.content()
    finally:
        await context.close()


async def test_an_edit_conflict_from_a_second_context(browser: Browser, world: World) -> None:
    operator = await world.key("operator")
    first = await _signed_in(browser, world, operator["key"])
    second = await _signed_in(browser, world, operator["key"])
    try:
        for page in (first, second):
            await page.goto(world.node_url(world.root))
            await page.get_by_role("button", name="Edit").click()
        await first.get_by_label("Body").fill("Customers first, always.")
        await first.get_by_label("Message").fill("say it stronger")
        await first.get_by_role("button", name="Save").click()
        await expect(first.get_by_role("status").filter(has_text="Saved.")).to_be_visible()

        await second.get_by_label("Body").fill("Customers and staff first.")
        await second.get_by_label("Message").fill("staff too")
        await second.get_by_role("button", name="Save").click()
        conflict = second.get_by_role("region", name=re.compile("Your edit was not saved"))
        await expect(conflict).to_be_visible()
        await expect(conflict).to_contain_text("You edited revision 1")
        await expect(conflict).to_contain_text("say it stronger")  # what changed since: why
        await expect(conflict.locator("table.diff")).to_contain_text("Customers first, always.")
        assert (await world.node(world.root))["body"] == "Customers first, always."

        await expect(conflict.get_by_label("Your body")).to_have_value("Customers and staff first.")
        await conflict.get_by_role("button", name="Re-apply my edit").click()
        await expect(second.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
        node = await world.node(world.root)
        assert node["body"] == "Customers and staff first."
        assert node["latest_version"] == 3
        await expect(second.locator("section", has_text="History")).to_contain_text("staff too")
    finally:
        await first.context.close()
        await second.context.close()


async def test_a_rollback(browser: Browser, world: World) -> None:
    operator = await world.key("operator")
    page = await _signed_in(browser, world, operator["key"])
    try:
        await page.goto(world.node_url(world.team))
        await page.get_by_label("Make active").select_option("1")
        await page.get_by_label("Why").fill("too ambitious")
        await page.get_by_role("button", name="Roll back").click()
        await expect(page.get_by_role("status").filter(has_text="Rolled back")).to_be_visible()
        node = await world.node(world.team)
        assert (node["active_version"], node["latest_version"]) == (1, 2)
        assert node["body"] == "Answer within a day."
        await expect(page.locator("pre.body").first).to_have_text("Answer within a day.")
        world.team = node
    finally:
        await page.context.close()


async def test_a_live_update_in_one_tab_after_a_change_in_another(
    browser: Browser, world: World
) -> None:
    operator = await world.key("operator")
    watcher = await _signed_in(browser, world, operator["key"])
    try:
        await watcher.goto(world.url(f"/console/realms/{world.realm}/agents/pilot"))
        region = watcher.get_by_role("region", name="Composed prompt")
        await expect(watcher.locator("#live-status")).to_have_attribute("data-state", "live")
        before = await watcher.get_by_label("Composition id").input_value()
        feed = await watcher.context.new_page()
        await feed.goto(world.url(f"/console/realms/{world.realm}/events"))
        await expect(feed.locator("#live-status")).to_have_attribute("data-state", "live")

        editor = await watcher.context.new_page()
        await editor.goto(world.node_url(world.team))
        await editor.get_by_role("button", name="Edit").click()
        await editor.get_by_label("Body").fill("Answer within ten minutes.")
        await editor.get_by_label("Message").fill("live")
        await editor.get_by_role("button", name="Save").click()
        await expect(editor.get_by_role("status").filter(has_text="Saved.")).to_be_visible()

        await expect(region).to_contain_text("Answer within ten minutes.", timeout=WAIT_MS)
        after = await watcher.get_by_label("Composition id").input_value()
        assert after != before
        assert after.startswith("cmp_")
        await expect(feed.locator("#events tr").first).to_contain_text(
            "directive.version_created", timeout=WAIT_MS
        )
        await expect(feed.locator("#events tr").first).to_contain_text(world.team["id"])
    finally:
        await watcher.context.close()


async def test_a_reader_sees_no_write_controls(browser: Browser, world: World) -> None:
    reader = await world.key("reader")
    page = await _signed_in(browser, world, reader["key"])
    try:
        await page.goto(world.node_url(world.root))
        await expect(page.get_by_role("heading", level=1)).to_be_visible()
        for name in ("Edit", "Save", "Roll back", "Re-apply my edit", "Add schedule"):
            assert await page.get_by_role("button", name=name).count() == 0, name
        assert await page.get_by_label("Message").count() == 0
        assert await page.locator("form[action$='/edit'], form[action$='/rollback']").count() == 0
        # No form that writes but Sign out, and no way to the (operator) webhooks page.
        writes = page.locator("form[method=post]:not([action='/console/sign-out'])")
        assert await writes.count() == 0
        assert await page.get_by_role("link", name="Webhooks").count() == 0
        # A write posted anyway is refused, and nothing changes.
        before = await world.node(world.root)
        html = await page.content()
        token = re.search(r'name="csrf" value="([^"]+)"', html)
        assert token is not None
        answer = await page.request.post(
            world.node_url(world.root) + "/edit",
            form={
                "csrf": token.group(1),
                "expected_revision": str(before["revision"]),
                "base_version": str(before["active_version"]),
                "title": "Hijacked",
                "body": "Hijacked",
            },
            headers={"Origin": world.server.url},
        )
        assert answer.status == 403
        assert (await world.node(world.root))["revision"] == before["revision"]
    finally:
        await page.context.close()


async def test_a_write_without_the_csrf_token_is_refused(browser: Browser, world: World) -> None:
    operator = await world.key("operator")
    page = await _signed_in(browser, world, operator["key"])
    try:
        before = await world.node(world.root)
        fields = {
            "expected_revision": str(before["revision"]),
            "base_version": str(before["active_version"]),
            "title": "Forged",
            "body": "Forged",
        }
        for extra in ({}, {"csrf": "not-the-token"}):
            answer = await page.request.post(
                world.node_url(world.root) + "/edit", form={**fields, **extra}
            )
            assert answer.status == 403
        html = await page.content()
        token = re.search(r'name="csrf" value="([^"]+)"', html)
        assert token is not None
        cross = await page.request.post(
            world.node_url(world.root) + "/edit",
            form={**fields, "csrf": token.group(1)},
            headers={"Origin": "http://127.0.0.1:1"},
        )
        assert cross.status == 403
        assert (await world.node(world.root))["revision"] == before["revision"]
        # The cookie never authorises an API write: no CSRF exposure there.
        api = await page.request.patch(
            world.url(f"/v1/realms/{world.realm}/directives/{world.root['id']}"),
            data={"title": "Forged", "expected_revision": before["revision"]},
        )
        assert api.status == 401
    finally:
        await page.context.close()


async def test_sign_out_and_revocation_end_the_session_and_its_stream(
    browser: Browser, world: World
) -> None:
    prompt = f"/console/realms/{world.realm}/agents/pilot"
    for ending in ("sign-out", "revocation"):
        operator = await world.key("operator")
        page = await _signed_in(browser, world, operator["key"])
        try:
            await page.goto(world.url(prompt))
            status = page.locator("#live-status")
            await expect(status).to_have_attribute("data-state", "live")
            if ending == "sign-out":
                other = await page.context.new_page()
                await other.goto(world.url(f"/console/realms/{world.realm}"))
                await other.get_by_role("button", name="Sign out").click()
                await expect(other.get_by_label("API key")).to_be_visible()
            else:
                await world.revoke(operator["id"])
            await expect(status).to_have_attribute("data-state", "ended", timeout=WAIT_MS)
            stream = await page.request.get(
                world.url(f"/v1/realms/{world.realm}/agents/pilot/prompt/stream")
            )
            assert stream.status == 401
            await page.goto(world.url("/console/realms"))
            await expect(page.get_by_label("API key")).to_be_visible()  # sent to sign in
        finally:
            await page.context.close()


async def test_cors_opens_the_api_and_streams_to_the_named_origin_only(
    browser: Browser, world: World, origins: tuple[str, str]
) -> None:
    allowed, refused = origins
    reader = await world.key("reader")
    page = await _signed_in(browser, world, reader["key"])
    try:
        script = """async ([url, key]) => {
            try {
                const r = await fetch(url, {headers: {Authorization: "Bearer " + key}});
                return [r.status, r.headers.get("etag") || ""];
            } catch (error) { return [0, String(error)]; }
        }"""
        stream = """([url]) => new Promise((resolve) => {
            const source = new EventSource(url, {withCredentials: true});
            source.addEventListener("prompt", (e) => {
                source.close(); resolve(JSON.parse(e.data).agent_id);
            });
            source.onerror = () => { source.close(); resolve("error"); };
            setTimeout(() => { source.close(); resolve("timeout"); }, 10000);
        })"""
        node = world.url(f"/v1/realms/{world.realm}/directives/{world.root['id']}")
        prompt = world.url(f"/v1/realms/{world.realm}/agents/pilot/prompt")
        for origin, readable in ((allowed, True), (refused, False)):
            await page.goto(origin)
            status, etag = await page.evaluate(script, [node, reader["key"]])
            assert (status == 200) is readable, (origin, status, etag)
            if readable:
                assert re.fullmatch(r'"\d+"', etag)  # an exposed header
            fast_status, _ = await page.evaluate(script, [prompt, reader["key"]])
            assert (fast_status == 200) is readable
            # The session cookie is same-site across loopback ports: the stream follows it.
            got = await page.evaluate(stream, [prompt + "/stream"])
            assert got == ("pilot" if readable else "error"), (origin, got)
    finally:
        await page.context.close()


PAGES = (
    "sign-in",
    "realms",
    "tree",
    "node",
    "conflict",
    "agents",
    "agent",
    "composition",
    "events",
    "not-found",
)


async def _show(page: Page, world: World, name: str) -> None:
    realm = f"/console/realms/{world.realm}"
    if name == "sign-in":
        await page.goto(world.url("/console"))
        await page.get_by_label("API key").fill("chk_wrong")
        await page.get_by_role("button", name="Sign in").click()
        return
    if name == "conflict":
        await page.goto(world.node_url(world.paused))
        await page.get_by_role("button", name="Edit").click()
        await page.evaluate(
            "() => { document.querySelector('#edit-form [name=expected_revision]').value = '0'; }"
        )
        await page.get_by_label("Body").fill("A stale edit.")
        await page.get_by_role("button", name="Save").click()
        await expect(page.get_by_role("button", name="Re-apply my edit")).to_be_visible()
        return
    paths = {
        "realms": "/console/realms",
        "tree": realm,
        "node": f"{realm}/directives/{world.team['id']}?from_version=1&to_version=2",
        "agents": f"{realm}/agents",
        "agent": f"{realm}/agents/pilot",
        "events": f"{realm}/events",
        "not-found": f"{realm}/directives/dir_00000000000000000000000000",
    }
    if name == "composition":
        await page.goto(world.url(f"{realm}/agents/pilot"))
        cid = await page.get_by_label("Composition id").input_value()
        await page.goto(world.url(f"{realm}/compositions"))
        await page.get_by_label("Look up id").fill(cid)
        await page.get_by_role("button", name="Look up").click()
        await expect(page.get_by_role("region", name="Composed prompt")).to_be_visible()
        return
    await page.goto(world.url(paths[name]))
    if name in ("agent", "events"):
        await expect(page.locator("#live-status")).to_have_attribute("data-state", "live")


async def test_every_page_passes_axe_at_both_widths(browser: Browser, world: World) -> None:
    operator = await world.key("operator")
    found: dict[str, list[str]] = {}
    errors: list[str] = []
    for width in WIDTHS:
        page = await _signed_in(browser, world, operator["key"], width)
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            for name in PAGES:
                if name == "sign-in":
                    context = await _context(browser, world, width)
                    target = await context.new_page()
                else:
                    target = page
                await _show(target, world, name)
                violations = await serious_violations(target)
                found[f"{name}@{width}"] = [f"{v['id']}: {v['help']}" for v in violations]
                shot = await screenshot(target, name, width)
                assert shot.stat().st_size > 0
                if width == 390:  # nothing wider than the screen
                    overflow = await target.evaluate(
                        "() => document.documentElement.scrollWidth - window.innerWidth"
                    )
                    assert overflow <= 0, (name, overflow)
                if target is not page:
                    await target.context.close()
        finally:
            await page.context.close()
    assert {page: v for page, v in found.items() if v} == {}
    assert errors == []
    assert world.offline.blocked == []  # nothing even tried the internet


async def test_the_console_is_served_without_a_key(world: World) -> None:
    async with httpx.AsyncClient(base_url=world.server.url) as http:
        home = await http.get("/console")
        assert home.status_code == 200
        assert "API key" in home.text
        assert (await http.get("/console/static/console.js")).status_code == 200
        page = await http.get(f"/console/realms/{world.realm}")
        assert page.status_code == 303
        assert page.headers["location"] == "/console"
        schema = (await http.get("/schema/openapi.json")).json()
        assert not [p for p in schema["paths"] if p.startswith("/console")]
    await asyncio.sleep(0)


@dataclass
class Releases:
    """A realm of its own for rollouts, schedules, webhooks and claims (the shared world's
    tree stays as its tests expect): `train` has a draft version 2, `canary` a running
    rollout and a pending schedule, `job` a live claim by pilot; a webhook to `receiver`."""

    realm: str
    train: dict[str, Any]
    canary: dict[str, Any]
    job: dict[str, Any]
    hook: dict[str, Any]
    receiver: Receiver

    def node_url(self, world: World, node: dict[str, Any]) -> str:
        return world.url(f"/console/realms/{self.realm}/directives/{node['id']}")


@pytest.fixture(scope="module")
async def releases(world: World) -> AsyncIterator[Releases]:
    realm = new_realm_id()
    async with Receiver() as receiver, world.server.http() as http:
        api = LiveApi(http, realm)
        await api.create_realm()
        train = await api.create(title="Release train", body="Ship weekly.", owner_agent_id="pilot")
        await api.patch(train, body="Ship daily.", activate=False, message="draft")
        canary = await api.create(title="Canary", body="Old words.", owner_agent_id="scout")
        canary = await api.patch(canary, body="New words.", activate=False, message="draft")
        rollout = {"version": 2, "percent": 30, "expected_revision": canary["revision"]}
        started = await http.put(f"{api.base}/directives/{canary['id']}/rollout", json=rollout)
        assert started.status_code == 200, started.text
        composed = await api.prompt("scout")  # an outcome, so the arms table has a row
        outcome = {
            "composition_id": composed["composition_id"],
            "agent_id": "scout",
            "metric": "resolved",
            "value": 1,
        }
        reported = await http.post(f"{api.base}/outcomes", json=outcome)
        assert reported.status_code == 202, reported.text
        later = (datetime.now(UTC) + timedelta(days=2)).isoformat()
        scheduled = await http.post(
            f"{api.base}/directives/{canary['id']}/schedules",
            json={"at": later, "action": {"rollout": {"percent": 60}}},
        )
        assert scheduled.status_code == 201, scheduled.text
        job = await api.create(
            level="team",
            parent_id=train["id"],
            title="Nightly job",
            body="Run.",
            owner_agent_id="pilot",
        )
        claimed = await http.post(
            f"{api.base}/directives/{job['id']}/claims",
            json={"agent_id": "pilot", "lease_seconds": 600},
        )
        assert claimed.status_code == 201, claimed.text
        made = await http.post(f"{api.base}/webhooks", json={"url": receiver.url, "events": ["*"]})
        assert made.status_code == 201, made.text
        receiver.secret = made.json()["secret"]
        await api.create(title="Delivered", body="An event for the webhook.")
        await receiver.wait_for(1)
        try:
            yield Releases(
                realm, train, await _get(http, realm, canary), job, made.json(), receiver
            )
        finally:  # later servers on this database would deliver to what is left
            for hook in (await http.get(f"{api.base}/webhooks")).json()["items"]:
                await http.delete(f"{api.base}/webhooks/{hook['id']}")


async def _get(http: httpx.AsyncClient, realm: str, node: dict[str, Any]) -> dict[str, Any]:
    response = await http.get(f"/v1/realms/{realm}/directives/{node['id']}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def test_a_release_flow_rollout_schedule_webhooks_and_claims(
    browser: Browser, world: World, releases: Releases
) -> None:
    operator = await world.key("operator", realms=[releases.realm])
    page = await _signed_in(browser, world, operator["key"])
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    said = page.get_by_role("status")
    try:
        await page.goto(releases.node_url(world, releases.train))
        await page.get_by_label("Version to roll out").select_option("2")
        await page.get_by_label("Percent", exact=True).fill("25")
        await page.get_by_role("button", name="Start rollout").click()
        await expect(said.filter(has_text="Rollout started.")).to_be_visible()
        await expect(page.locator("#nb-" + releases.train["id"])).to_contain_text(
            "rollout v2 at 25 %"
        )
        await page.get_by_role("link", name="Tree").click()
        item = page.get_by_role("treeitem", name="Release train", exact=True)
        await expect(item.locator(".badge.rollout").first).to_have_text("rollout v2 at 25 %")
        await item.get_by_role("link", name="Release train").click()
        await page.get_by_label("New percent").fill("50")
        await page.get_by_role("button", name="Change percent").click()
        await expect(said.filter(has_text="percent is changed")).to_be_visible()
        await page.get_by_role("button", name="Promote").click()
        await expect(said.filter(has_text="Promoted")).to_be_visible()
        async with world.server.http() as http:
            train = await _get(http, releases.realm, releases.train)
        assert (train["active_version"], train["rollout"]) == (2, None)
        await expect(page.get_by_role("button", name="Start rollout")).to_be_visible()

        when = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
        await page.get_by_label("At (UTC)").fill(when)
        await page.get_by_label("Action").select_option("status")
        await page.get_by_label("Value").fill("paused")
        await page.get_by_role("button", name="Add schedule").click()
        await expect(said.filter(has_text="Schedule added.")).to_be_visible()
        schedules = page.get_by_role("region", name="Schedules table")
        await expect(schedules).to_contain_text("status paused")
        await expect(schedules).to_contain_text("pending")
        await page.get_by_role("button", name="Cancel schedule").click()
        await expect(said.filter(has_text="Schedule cancelled.")).to_be_visible()
        await expect(schedules).to_contain_text("cancelled")
        await expect(page.get_by_role("button", name="Cancel schedule")).to_have_count(0)

        await page.get_by_role("link", name="Webhooks").click()
        await expect(page.get_by_role("heading", name=re.compile("^Webhooks in"))).to_be_visible()
        await page.get_by_label("URL").fill(releases.receiver.url + "/second")
        await page.get_by_label("Events").fill("directive.rollout_started")
        await page.get_by_role("button", name="Add webhook").click()
        secret = page.get_by_label("Signing secret", exact=True)
        await expect(secret).to_have_value(re.compile(r"^whsec_"))
        assert await serious_violations(page) == []
        await screenshot(page, "webhook-added", 1280)
        shown = await secret.input_value()
        await page.get_by_role("link", name="Webhooks").click()
        assert shown not in await page.content()  # once only
        await page.get_by_role("link", name=releases.receiver.url, exact=True).click()
        log = page.get_by_role("region", name="Delivery log, newest first")
        await expect(log).to_contain_text("HTTP 204")
        before = len(releases.receiver.got)
        await page.get_by_role("button", name="Retry").first.click()
        await expect(said.filter(has_text="Sent again")).to_be_visible()
        await expect(log).to_contain_text("(manual)")
        await releases.receiver.wait_for(before + 1)

        await page.get_by_role("link", name="Claims").click()
        pilot = page.get_by_role("region", name="Claims held by pilot")
        await expect(pilot).to_contain_text(releases.job["id"])
        assert errors == []
    finally:
        await page.context.close()


RELEASE_PAGES = ("rollout", "webhooks", "webhook", "claims")


async def test_the_release_pages_pass_axe_at_both_widths(
    browser: Browser, world: World, releases: Releases
) -> None:
    operator = await world.key("operator", realms=[releases.realm])
    realm = f"/console/realms/{releases.realm}"
    paths = {
        "rollout": f"{realm}/directives/{releases.canary['id']}",
        "webhooks": f"{realm}/webhooks",
        "webhook": f"{realm}/webhooks/{releases.hook['id']}",
        "claims": f"{realm}/claims",
    }
    found: dict[str, list[str]] = {}
    for width in WIDTHS:
        page = await _signed_in(browser, world, operator["key"], width)
        try:
            for name in RELEASE_PAGES:
                await page.goto(world.url(paths[name]))
                violations = await serious_violations(page)
                found[f"{name}@{width}"] = [f"{v['id']}: {v['help']}" for v in violations]
                assert (await screenshot(page, name, width)).stat().st_size > 0
                if width == 390:
                    overflow = await page.evaluate(
                        "() => document.documentElement.scrollWidth - window.innerWidth"
                    )
                    assert overflow <= 0, (name, overflow)
            await page.goto(world.url(paths["rollout"]))
            await expect(page.get_by_role("button", name="Abort rollout")).to_be_visible()
            arms = page.get_by_role("region", name="Rollout arms")
            await expect(arms.get_by_role("row").filter(has_text="resolved")).to_have_count(1)
        finally:
            await page.context.close()
    assert {page: v for page, v in found.items() if v} == {}
    assert world.offline.blocked == []


# The data cells of the page's tables that reach past the window's right edge: each named by
# its column's header, with how far past.
_CELLS_PAST_THE_EDGE = """() => Array.from(document.querySelectorAll("main table td"))
  .map((cell) => {
    const table = cell.closest("table");
    const header = table.querySelectorAll("thead th")[cell.cellIndex];
    return [header ? header.textContent.trim() : "", cell.getBoundingClientRect().right];
  })
  .filter(([, right]) => right > window.innerWidth + 0.5)
  .map(([name, right]) => `${name}: ${Math.round(right - window.innerWidth)} px`)"""


async def test_the_tables_fit_a_390_px_screen(
    browser: Browser, world: World, releases: Releases
) -> None:
    """At 390 px every cell of the webhooks, deliveries, claims, rollout, layers and event
    tables is on the screen (no column cut off, nothing to scroll sideways), the webhooks'
    Events column included, and so are the rows the page's script adds to the live feed."""
    operator = await world.key("operator", realms=[releases.realm])
    realm = f"/console/realms/{releases.realm}"
    events = ["directive.created", "directive.rollout_started", "directive.claim_expired"]
    async with world.server.http() as http:
        body = {"url": releases.receiver.url + "/narrow", "events": events, "agents": ["pilot"]}
        made = await http.post(f"/v1/realms/{releases.realm}/webhooks", json=body)
    assert made.status_code == 201, made.text
    page = await _signed_in(browser, world, operator["key"], 390)
    try:
        await page.goto(world.url(f"{realm}/webhooks"))
        row = page.get_by_role("row").filter(has_text="/narrow")
        cell = row.get_by_role("cell").filter(has_text="directive.rollout_started")
        await screenshot(page, "webhooks-narrow", 390)
        box = await cell.bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= 390
        past: dict[str, list[str]] = {}
        for name, path in (
            ("webhooks", f"{realm}/webhooks"),
            ("webhook", f"{realm}/webhooks/{releases.hook['id']}"),
            ("claims", f"{realm}/claims"),
            ("rollout", f"{realm}/directives/{releases.canary['id']}"),
            ("agent", f"{realm}/agents/pilot"),
            ("events", f"{realm}/events"),
        ):
            await page.goto(world.url(path))
            past[name] = await page.evaluate(_CELLS_PAST_THE_EDGE)
        rows = page.locator("#events tr")
        before = await rows.count()
        await expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
        async with world.server.http() as http:
            await LiveApi(http, releases.realm).create(title="Arrives live", body="Narrow.")
        await expect(rows).to_have_count(before + 1)
        labels = await rows.first.locator("td").evaluate_all(
            "(cells) => cells.map((cell) => cell.getAttribute('data-label'))"
        )
        assert labels == ["Seq", "Type", "Directive", "Revision", "Version", "Actor", "When"]
        past["live feed"] = await page.evaluate(_CELLS_PAST_THE_EDGE)
        assert past == {name: [] for name in past}
        assert len(past) == 7
    finally:
        await page.context.close()
        async with world.server.http() as http:
            await http.delete(f"/v1/realms/{releases.realm}/webhooks/{made.json()['id']}")
