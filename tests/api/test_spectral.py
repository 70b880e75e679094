"""Spectral's `spectral:oas` ruleset finds nothing in the document the app serves.

Spectral is an npm package: scripts/tools installs it (and node) and names it in
CHARTER_SPECTRAL, so a fresh machine gets it from scripts/test.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

SPECTRAL_SECONDS = 180


def _spectral() -> str:
    spectral = os.environ.get("CHARTER_SPECTRAL", "")
    assert spectral, "CHARTER_SPECTRAL is unset: run the tests through scripts/test"
    assert os.access(spectral, os.X_OK), f"{spectral} is missing: scripts/tools installs it"
    return spectral


def _lint(document: Path, ruleset: Path) -> subprocess.CompletedProcess[str]:
    command = [_spectral(), "lint", "--ruleset", str(ruleset), "--format", "json"]
    command += ["--fail-severity", "hint", "--quiet", str(document)]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=SPECTRAL_SECONDS, check=False
    )


async def test_spectral_finds_nothing(client: AsyncTestClient[Litestar], tmp_path: Path) -> None:
    request = client.build_request("GET", "/schema/openapi.json")
    del request.headers["Authorization"]
    response = await client.send(request)
    assert response.status_code == 200
    document = tmp_path / "openapi.json"
    document.write_bytes(response.content)
    ruleset = tmp_path / ".spectral.yaml"
    ruleset.write_text('extends: ["spectral:oas"]\n')
    run = await asyncio.to_thread(_lint, document, ruleset)
    findings: list[dict[str, Any]] = json.loads(run.stdout) if run.stdout.strip() else []
    summary = [(f["code"], ".".join(map(str, f["path"])), f["message"]) for f in findings]
    assert summary == [], summary
    assert run.returncode == 0, run.stderr
