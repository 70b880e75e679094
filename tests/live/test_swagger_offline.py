"""/schema/swagger renders in Chromium with the internet cut off.

Debian's chromium (installed by scripts/tools, named by CHARTER_CHROMIUM), driven by
Playwright; every request that is not to the server on loopback is aborted and recorded.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Route, async_playwright

from tests.support.servers import StartServer

PAGE_SECONDS = 30
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
METHODS = {"get", "put", "post", "patch", "delete"}

pytestmark = pytest.mark.timeout(120)


def _chromium() -> str:
    chromium = os.environ.get("CHARTER_CHROMIUM", "")
    assert chromium, "CHARTER_CHROMIUM is unset: run the tests through scripts/test"
    assert os.access(chromium, os.X_OK), f"{chromium} is missing: scripts/tools installs it"
    return chromium


async def test_the_swagger_page_renders_offline(start_server: StartServer) -> None:
    server = await start_server()
    async with httpx.AsyncClient(base_url=server.url) as http:
        document = (await http.get("/schema/openapi.json")).json()
    operations = sum(
        1 for item in document["paths"].values() for method in item if method in METHODS
    )
    requested: list[str] = []
    blocked: list[str] = []
    errors: list[str] = []

    async def offline(route: Route) -> None:
        url = route.request.url
        requested.append(url)
        if urlsplit(url).hostname in LOOPBACK:
            await route.continue_()
        else:
            blocked.append(url)
            await route.abort("internetdisconnected")

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=_chromium(), headless=True)
        try:
            context = await browser.new_context()
            await context.route("**/*", offline)
            page = await context.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(f"{server.url}/schema/swagger", timeout=PAGE_SECONDS * 1000)
            blocks = page.locator(".opblock")
            await blocks.nth(operations - 1).wait_for(timeout=PAGE_SECONDS * 1000)
            shown = await blocks.count()
            title = await page.locator(".info .title").inner_text()
            paths = await page.locator(".opblock-summary-path").all_inner_texts()
        finally:
            await browser.close()

    assert errors == []
    assert blocked == []  # nothing even tried the internet
    assert any(url.endswith("/schema/assets/swagger-ui-bundle.js") for url in requested)
    assert shown == operations
    assert title.startswith("Charter")
    assert any(path.replace("\u200b", "") == "/v1/realms/{realm_id}/directives" for path in paths)
