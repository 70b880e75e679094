"""Chromium for the console tests: Debian's browser driven by Playwright, cut off from the
internet, with axe-core's checks and screenshots; and a page served from another origin."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from axe_playwright_python.async_playwright import Axe
from playwright.async_api import BrowserContext, Page, Route

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
WIDTHS = (1280, 390)
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "console"
_axe = Axe()


def chromium() -> str:
    path = os.environ.get("CHARTER_CHROMIUM", "")
    assert path, "CHARTER_CHROMIUM is unset: run the tests through scripts/test"
    assert os.access(path, os.X_OK), f"{path} is missing: scripts/tools installs it"
    return path


@dataclass
class Offline:
    """Every request not to loopback is aborted, and recorded."""

    blocked: list[str] = field(default_factory=list)

    async def route(self, route: Route) -> None:
        url = route.request.url
        if urlsplit(url).hostname in LOOPBACK:
            await route.continue_()
        else:
            self.blocked.append(url)
            await route.abort("internetdisconnected")

    async def cut(self, context: BrowserContext) -> BrowserContext:
        await context.route("**/*", self.route)
        return context


async def serious_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    results = await _axe.run(page)
    violations: list[dict[str, Any]] = results.response["violations"]
    return [v for v in violations if v.get("impact") in ("serious", "critical")]


async def screenshot(page: Page, name: str, width: int) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}-{width}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'<!doctype html><html lang="en"><title>Another origin</title><p>elsewhere</p>'
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def other_origin() -> Iterator[str]:
    """A plain page on another loopback port; yields its origin."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
