"""The CAS peer of scenario 3: etcd, driven through its HTTP (v3 JSON) gateway.

DESIGN §5 sets Charter's CAS writes against etcd's own compare-and-swap: a `txn` comparing
the key's `mod_revision` with the one the writer last heard of, then a put of the same bytes
Charter's PATCH carries. A refused txn reads the key's current `mod_revision` (its failure
branch, keys only: the value is not needed, as Charter's 412 carries no text either), and the
writer tries again with it, exactly as Charter's writers use the ETag of a 412.

`Etcd` runs Debian's `etcd` (package `etcd-server`, installed by `scripts/bench`) on a spare
loopback port with its data directory under /tmp, with its default durability (every commit
fsynced, as PostgreSQL's), and removes both when stopped. One directive is one key; every
writer holds one keep-alive connection, like Charter's.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

from benchmarks.load import Http1
from benchmarks.servers import free_port

Attempt = Callable[[str, int, str], Awaitable[tuple[bool, int]]]
Writer = tuple[Attempt, Callable[[], Awaitable[None]]]


def available() -> bool:
    return shutil.which("etcd") is not None


def version() -> str:
    try:
        out = subprocess.run(["etcd", "--version"], capture_output=True, text=True, timeout=10)
    except OSError:
        return "?"
    first = out.stdout.splitlines()[0] if out.stdout else "?"
    return first.removeprefix("etcd Version: ").strip()


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Etcd:
    """One etcd member on loopback; `stop` ends it and removes its data."""

    def __init__(self) -> None:
        self.port, peer = free_port(), free_port()
        self.data = Path(tempfile.mkdtemp(prefix="charter-etcd.", dir="/tmp"))
        client, peers = f"http://127.0.0.1:{self.port}", f"http://127.0.0.1:{peer}"
        command = [
            "etcd",
            "--name=bench",
            f"--data-dir={self.data / 'member'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peers}",
            f"--initial-advertise-peer-urls={peers}",
            f"--initial-cluster=bench={peers}",
            "--log-level=error",
        ]
        with (self.data / "etcd.log").open("wb") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _post(self, path: str, document: object) -> dict[str, object]:
        request = urllib.request.Request(
            self.base + path, data=json.dumps(document).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            result: dict[str, object] = json.loads(answer.read())
            return result

    def wait_ready(self, seconds: float = 30.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                self._post("/v3/kv/range", {"key": _b64("/ready")})
                return
            except OSError:
                time.sleep(0.2)
        log = (self.data / "etcd.log").read_text()[-3000:]
        raise RuntimeError(f"etcd did not start:\n{log}")

    def seed(self, realm: str, ids: list[str], value: str) -> None:
        """One key per directive, each holding `value`."""
        for directive_id in ids:
            self._post("/v3/kv/put", {"key": _b64(key(realm, directive_id)), "value": _b64(value)})

    def revisions(self, realm: str, ids: list[str]) -> dict[str, int]:
        """Each key's current `mod_revision` (a writer's starting point, as Charter's are)."""
        prefix = f"/charter/{realm}/"
        answer = self._post(
            "/v3/kv/range",
            {"key": _b64(prefix), "range_end": _b64(prefix[:-1] + "0"), "keys_only": True},
        )
        found = {
            base64.b64decode(str(kv["key"])).decode().removeprefix(prefix): int(kv["mod_revision"])
            for kv in answer.get("kvs", [])  # type: ignore[union-attr]
        }
        return {directive_id: found[directive_id] for directive_id in ids}

    def writer(self, realm: str) -> Callable[[], Writer]:
        """A factory of writers, one keep-alive connection each (cas.load's contract)."""

        def make() -> Writer:
            client = Http1("127.0.0.1", self.port)

            async def attempt(directive_id: str, expected: int, body: str) -> tuple[bool, int]:
                name = _b64(key(realm, directive_id))
                value = base64.b64encode(json.dumps({"body": body}).encode()).decode()
                txn = {
                    "compare": [
                        {"target": "MOD", "key": name, "mod_revision": expected, "result": "EQUAL"}
                    ],
                    "success": [{"request_put": {"key": name, "value": value}}],
                    "failure": [{"request_range": {"key": name, "keys_only": True}}],
                }
                status, _, answer = await client.request(
                    "POST",
                    "/v3/kv/txn",
                    {"Content-Type": "application/json"},
                    json.dumps(txn).encode(),
                )
                if status != 200:
                    raise RuntimeError(f"etcd txn answered {status}: {answer[:300]!r}")
                result = json.loads(answer)
                if result.get("succeeded"):
                    return True, int(result["header"]["revision"])
                kvs = result["responses"][0]["response_range"]["kvs"]
                return False, int(kvs[0]["mod_revision"])

            return attempt, client.close

        return make

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.data, ignore_errors=True)


def key(realm: str, directive_id: str) -> str:
    return f"/charter/{realm}/{directive_id}"
