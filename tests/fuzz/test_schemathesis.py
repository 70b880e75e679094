"""Schemathesis against the app on real PostgreSQL and Redis: never a 5xx, every answer as the
OpenAPI document says (status, content type, body schema), and no directive text in any error
or log line.

The app runs in-process (schemathesis drives its ASGI interface, lifespan included), so there is
no port to find and no process to leak. A seeded realm gives the generated requests real
objects to hit: each example decides, by a Hypothesis draw, whether to aim its path ids at them.

`FUZZ_EXAMPLES` sets the examples per operation: small in the suite, larger in `scripts/fuzz`;
`FUZZ_SEED` replays a run's examples.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.serialization import encode_json
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from charter.api.openapi import document
from charter.app import create_app
from charter.settings import Settings
from tests.support.api import ADMIN_KEY
from tests.support.redis import SHARED_REDIS_URL

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
# Text that only the seeded directives carry: no error detail or log line may ever show it.
MARKER = "fz-MARKER-91c4"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
MAX_FUZZ_WAIT = 1
REQUEST_TIMEOUT = 10.0


@dataclass(frozen=True)
class Seed:
    """What the seeded realm holds, for the path ids a generated request may aim at."""

    realm: str
    directives: list[str]
    agents: list[str]
    compositions: list[str]
    key_id: str


def _settings() -> Settings:
    # Read where scripts/test puts them; the `postgres_urls` fixture migrates that database
    # before the first request starts the app's lifespan (and fails clearly when they are unset).
    return Settings(
        database_url=os.environ.get("CHARTER_TEST_DATABASE_URL", "postgresql+asyncpg://unset/"),
        redis_url=SHARED_REDIS_URL,
        heartbeat_seconds=0.2,
        bootstrap_key=ADMIN_KEY,
        rate_limit_per_second=0,
    )


# Built at import, without touching a database: schemathesis makes one test per operation at
# collection, from the document. (Its lazy `from_fixture` loader does not work on pytest 9.2.)
APP = create_app(_settings())
schema = schemathesis.openapi.from_dict(
    # Through JSON, as /schema/openapi.json serves it: the document leaves examples as Structs.
    json.loads(encode_json(document(APP))),
    config=SchemathesisConfig.from_dict(
        {
            "headers": {"Authorization": f"Bearer {ADMIN_KEY}"},
            "generation": {"max-examples": EXAMPLES},
            "phases": {"stateful": {"enabled": False}},
            "max-stream-events": 1,
            "request-timeout": REQUEST_TIMEOUT,
            # Unset: new examples every run. Set (scripts/fuzz): the same examples again.
            **({"seed": int(os.environ["FUZZ_SEED"])} if os.environ.get("FUZZ_SEED") else {}),
        }
    ),
)
schema.app = APP  # requests go to the app in-process, as `schemathesis.openapi.from_asgi` does


@pytest.fixture(scope="module")
def fuzz_app(postgres_urls: tuple[str, str]) -> Iterator[Litestar]:
    assert postgres_urls[1] == _settings().database_url
    yield APP
    asgi.shutdown_lifespans()  # close the engine and Redis now, not at interpreter exit


@pytest.fixture(scope="module")
def app_logs() -> Iterator[list[str]]:
    """Every log line the app writes while the module runs."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect(logging.DEBUG)
    logger = logging.getLogger("charter")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(previous)


def _post(client: asgi.ASGIClient, url: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(url, json=body)
    assert response.status_code in (200, 201), response.text
    created: dict[str, Any] = response.json()
    return created


_SEEDED: list[Seed] = []  # filled by the `seed` fixture, read when examples are drawn


@pytest.fixture(scope="module")
def seed(fuzz_app: Litestar) -> Seed:
    """A realm with a small tree, owned by two agents, with a few versions and a spare key."""
    realm = "fz-" + uuid.uuid4().hex[:16]
    # Litestar types its ASGI signature more narrowly than schemathesis's generic one.
    with asgi.get_client(cast(asgi.ASGIApp, fuzz_app)) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
        _post(client, "/v1/realms", {"id": realm})
        base = f"/v1/realms/{realm}/directives"
        text = {"title": f"{MARKER} title", "body": f"{MARKER} body"}
        root = _post(client, base, {"level": "realm", "key": "root", **text})
        team = _post(client, base, {"level": "team", "parent_id": root["id"], **text})
        lead = _post(
            client,
            base,
            {"level": "agent", "parent_id": team["id"], "owner_agent_id": "lead", **text},
        )
        scout = _post(
            client,
            base,
            {"level": "agent", "parent_id": root["id"], "owner_agent_id": "scout", **text},
        )
        for version in (2, 3):
            response = client.patch(
                f"{base}/{lead['id']}",
                json={"body": f"{MARKER} body v{version}"},
                headers={"If-Match": f'"{version - 1}"'},
            )
            assert response.status_code == 200, response.text
        compositions = []
        for agent in ("lead", "scout"):
            response = client.get(f"/v1/realms/{realm}/agents/{agent}/prompt")
            assert response.status_code == 200, response.text
            compositions.append(response.json()["composition_id"])
        key = _post(client, "/v1/keys", {"role": "reader", "realms": [realm], "name": "fuzz"})
    _SEEDED[:] = [
        Seed(
            realm=realm,
            directives=[root["id"], team["id"], lead["id"], scout["id"]],
            agents=["lead", "scout"],
            compositions=compositions,
            key_id=key["id"],
        )
    ]
    return _SEEDED[0]


@schema.hook
def flatmap_case(context: Any, case: Any) -> st.SearchStrategy[Any]:
    """Aim some path ids at the seeded objects, and some If-Match headers at real revisions.

    Each choice is a Hypothesis draw, so a failing example shrinks and replays like any other.
    """

    @st.composite
    def aimed(draw: st.DrawFn) -> Any:
        seed = _SEEDED[0]
        choices: dict[str, list[str] | list[int]] = {
            "realm_id": [seed.realm],
            "directive_id": seed.directives,
            "agent_id": seed.agents,
            "composition_id": seed.compositions,
            "number": [1, 2, 3],
            "key_id": [seed.key_id],
        }
        path = dict(case.path_parameters or {})
        for name, values in choices.items():
            if name in path and draw(st.booleans()):
                path[name] = draw(st.sampled_from(values))
        case.path_parameters = path
        headers = case.headers
        if headers is not None and "If-Match" in headers and draw(st.booleans()):
            case.headers = {**headers, "If-Match": f'"{draw(st.integers(1, 6))}"'}
        return case

    return aimed()


def _short_wait(query: dict[str, Any] | None) -> None:
    """A long poll may wait 60 s by contract (`wait=15.0` too): the fuzzer gets a second."""
    try:
        seconds = float(query["wait"]) if query else 0.0
    except (KeyError, TypeError, ValueError):
        return
    if query and seconds > MAX_FUZZ_WAIT:
        query["wait"] = MAX_FUZZ_WAIT


@schema.parametrize()
@settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_the_api_answers_as_documented(case: Any, seed: Seed, app_logs: list[str]) -> None:
    _short_wait(case.query)
    # A stream with nothing to send holds the connection open: one second of it is enough.
    timeout = 1.0 if case.path.endswith("/stream") else REQUEST_TIMEOUT
    response = case.call_and_validate(checks=CHECKS, timeout=timeout)
    if response.status_code >= 400:
        assert MARKER not in response.text, "an error shows directive text"
    assert not [line for line in app_logs if MARKER in line], "a log line shows directive text"
