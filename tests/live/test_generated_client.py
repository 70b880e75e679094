"""A client generated from the served document by openapi-python-client works, typed.

The generator reads the document without a warning; its code and a program written against
it (generated_flow.py) pass mypy --strict; and that program, run against a `charter serve`
process, creates a directive, updates it with If-Match and an Idempotency-Key (and replays
it), reads a 412 as a typed Problem, and follows the prompt stream for one event.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.api import new_realm_id
from tests.support.servers import StartServer

PACKAGE = "charter_openapi"
GENERATE_SECONDS = 180
MYPY_SECONDS = 300
FLOW_SECONDS = 60
# The generator's client.py passes `*args: object` on to httpx's `__exit__`: a defect of its
# template (mypy's arg-type), not of the document; every other check stays strict.
MYPY_CONFIG = f"""[mypy]
strict = True

[mypy-{PACKAGE}.client]
disable_error_code = arg-type
"""


def _run(command: list[str], cwd: Path, seconds: float) -> subprocess.CompletedProcess[str]:
    # The generator formats its output with ruff, found on PATH: the venv's own.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=seconds, check=False
    )


def _generate(workdir: Path, document: Path) -> None:
    generator = [sys.executable, "-m", "openapi_python_client", "generate", "--meta", "none"]
    run = _run(
        [*generator, "--path", str(document), "--output-path", PACKAGE],
        workdir,
        GENERATE_SECONDS,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Warning" not in run.stdout + run.stderr, run.stdout + run.stderr
    assert (workdir / PACKAGE / "api" / "agents" / "stream_prompt.py").is_file()


def _type_check(workdir: Path) -> None:
    (workdir / "mypy.ini").write_text(MYPY_CONFIG)
    shutil.copy(Path(__file__).with_name("generated_flow.py"), workdir / "flow.py")
    mypy = [sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "--cache-dir", ".mypy"]
    run = _run([*mypy, PACKAGE, "flow.py"], workdir, MYPY_SECONDS)
    assert run.returncode == 0, run.stdout + run.stderr


async def test_a_generated_client_creates_updates_streams_and_reads_a_412(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = await start_server()
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
        response = await http.get("/schema", headers={"Accept": "application/json"})
    assert response.status_code == 200
    document = tmp_path / "openapi.json"
    document.write_bytes(response.content)

    await asyncio.to_thread(_generate, tmp_path, document)
    await asyncio.to_thread(_type_check, tmp_path)
    realm = new_realm_id()
    assert server.key is not None
    command = [sys.executable, "flow.py", server.url, server.key, realm]
    run = await asyncio.to_thread(_run, command, tmp_path, FLOW_SECONDS)
    assert run.returncode == 0, run.stdout + run.stderr
    seen = json.loads(run.stdout)

    assert seen["created"] == {"status": 201, "etag": '"1"'}
    assert seen["location"].startswith(f"/v1/realms/{realm}/directives/dir_")
    assert seen["updated"] == {
        "revision": 2,
        "etag": '"2"',
        "replayed": "true",
        "replayed_revision": 2,
    }
    assert seen["stale"] == {
        "status": 412,
        "code": "stale-revision",
        "current_revision": 2,
        "etag": '"2"',
    }
    assert seen["body"] == "v2"  # the replay wrote nothing, the stale update nothing either
    assert seen["event"]["event"] == "prompt"
    assert seen["event"]["id"] == seen["composition_id"]
    assert seen["event"]["agent"] == "generated-agent"
    assert "v2" in seen["prompt_text"]


pytestmark = pytest.mark.timeout(GENERATE_SECONDS + MYPY_SECONDS + FLOW_SECONDS + 60)
