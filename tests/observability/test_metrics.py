"""/metrics parses with prometheus_client, and matches docs/metrics.md both ways."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from charter.app import create_app
from charter.cache.bus import LocalBus
from charter.cache.hub import Hub
from charter.cache.local import LocalTier
from charter.cache.relay import Relay
from charter.db.session import Database
from charter.metrics import Metrics
from charter.settings import Settings
from tests.support.api import ADMIN_KEY, Api, new_realm_id

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
_ROW = re.compile(r"^\| `([a-z_]+)` \| (counter|gauge|histogram) \|\s*([a-z_, ]*?)\s*\|", re.M)


def documented() -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (type, labels) from the table in docs/metrics.md."""
    rows = {}
    for name, kind, labels in _ROW.findall(DOC.read_text()):
        rows[name] = (kind, frozenset(x.strip() for x in labels.split(",") if x.strip()))
    assert len(rows) > 10, "the table in docs/metrics.md was not found"
    return rows


def served(text: str) -> dict[str, tuple[str, frozenset[str]]]:
    families = {}
    for family in text_string_to_metric_families(text):
        labels: set[str] = set()
        for sample in family.samples:
            labels |= set(sample.labels) - {"le"}
        families[family.name] = (family.type, frozenset(labels))
    return families


async def test_metrics_parse_and_agree_with_the_docs(api: Api) -> None:
    await api.create(title="Root", body="b", owner_agent_id="pilot")
    url = f"/v1/realms/{api.realm}/agents/pilot/prompt"
    first = await api.client.get(url)
    await api.client.get(url)  # the fast path
    await api.client.get(url, params={"wait": 1}, headers={"If-None-Match": first.headers["etag"]})
    response = await api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# HELP charter_http_requests_total" in response.text
    assert "# TYPE charter_http_requests_total counter" in response.text
    families = served(response.text)
    table = documented()
    assert {name: kind for name, (kind, _) in families.items()} == {
        name: kind for name, (kind, _) in table.items()
    }
    for name, (kind, labels) in families.items():
        assert labels == table[name][1], (name, kind, labels)


async def test_every_watcher_kind_and_the_request_labels_are_there(api: Api) -> None:
    response = await api.client.get("/metrics")
    text = response.text
    for kind in ("long_poll", "prompt_stream", "event_stream"):
        assert f'charter_watchers{{kind="{kind}"}}' in text
    assert 'charter_rejections_total{reason="rate_limit"}' in text
    assert 'route="/metrics"' in (await api.client.get("/metrics")).text


async def test_metrics_need_a_key_by_default(client: AsyncTestClient[Litestar]) -> None:
    anonymous = await client.get("/metrics", headers={"Authorization": ""})
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"].startswith("application/problem+json")
    agent = await client.post(
        "/v1/keys", json={"role": "agent", "realms": ["*"], "agent_id": "some-agent"}
    )
    assert agent.status_code == 201, agent.text
    auth = {"Authorization": f"Bearer {agent.json()['key']}"}
    assert (await client.get("/metrics", headers=auth)).status_code == 200


async def test_metrics_are_public_by_setting(sqlite_url: str) -> None:
    assert Settings.from_env({}).metrics_public is False
    assert Settings.from_env({"CHARTER_METRICS_PUBLIC": "1"}).metrics_public is True
    settings = Settings(database_url=sqlite_url, bootstrap_key=ADMIN_KEY, metrics_public=True)
    async with AsyncTestClient(create_app(settings)) as anonymous:
        response = await anonymous.get("/metrics")
        assert response.status_code == 200
        assert "charter_http_requests" in served(response.text)
        assert (await anonymous.get("/v1/realms")).status_code == 401  # only /metrics opens


def _value(api: Api, name: str, labels: dict[str, str] | None = None) -> float:
    metrics = api.client.app.state.runtime.metrics
    metrics.flush()  # what a scrape does first: tallied counts join the metrics
    value = metrics.registry.get_sample_value(name, labels or {})
    assert value is not None, name
    return float(value)


async def test_the_pool_gauges_follow_transactions(settings: Settings) -> None:
    """One connection: a second transaction waits for it, and the gauges say so."""
    metrics = Metrics()
    db = Database.connect(settings.database_url, pool_size=1)
    db.instrument(metrics)

    def gauge(name: str) -> float | None:
        return metrics.registry.get_sample_value(name)

    entered = asyncio.Event()

    async def second() -> None:
        async with db.transaction("some-realm"):
            entered.set()

    try:
        assert gauge("charter_db_pool_size") == 1
        async with db.transaction("some-realm"):
            assert gauge("charter_db_pool_in_use") == 1
            assert gauge("charter_db_pool_waiting") == 0
            waiter = asyncio.create_task(second())
            deadline = time.monotonic() + 10
            while gauge("charter_db_pool_waiting") != 1:
                assert time.monotonic() < deadline, "the second transaction never waited"
                await asyncio.sleep(0.01)
            assert not entered.is_set()
        await asyncio.wait_for(waiter, 10)
        assert gauge("charter_db_pool_waiting") == 0
        assert gauge("charter_db_pool_in_use") == 0
    finally:
        await db.dispose()


def test_watchers_are_counted_by_kind() -> None:
    metrics = Metrics()
    hub = Hub(LocalTier(), metrics=metrics)

    def open_ones() -> dict[str, float | None]:
        return {
            kind: metrics.registry.get_sample_value("charter_watchers", {"kind": kind})
            for kind in ("long_poll", "prompt_stream", "event_stream")
        }

    assert open_ones() == {"long_poll": 0, "prompt_stream": 0, "event_stream": 0}
    with hub.watch_agent("r", "a"), hub.watch_agent("r", "b"):
        # An event stream is counted by its route (api/events.py), not by the realm's bell,
        # which one shared reader per realm and process holds (services/feeds.py).
        with hub.watch_agent("r", "a", kind="prompt_stream"), hub.counted("event_stream"):
            assert open_ones() == {"long_poll": 2, "prompt_stream": 1, "event_stream": 1}
        assert open_ones() == {"long_poll": 2, "prompt_stream": 0, "event_stream": 0}
    assert open_ones() == {"long_poll": 0, "prompt_stream": 0, "event_stream": 0}
    assert hub.watchers == 0


async def test_the_relay_lag_is_what_a_pass_found(sqlite_url: str) -> None:
    """A relay of its own on SQLite, where no background relay runs to race it."""
    metrics = Metrics()
    db = Database.connect(sqlite_url)
    try:
        hub = Hub(LocalTier())
        relay = Relay(db, hub, LocalBus(hub), None, metrics)
        await relay.drain()  # whatever earlier tests left
        settings = Settings(database_url=sqlite_url, bootstrap_key=ADMIN_KEY)
        async with AsyncTestClient(create_app(settings)) as client:
            client.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
            realm = new_realm_id()
            assert (await client.post("/v1/realms", json={"id": realm})).status_code == 201
            body = {"level": "realm", "title": "t", "body": "b"}
            for _ in range(3):
                created = await client.post(f"/v1/realms/{realm}/directives", json=body)
                assert created.status_code == 201
        await asyncio.sleep(0.05)
        assert await relay.drain() >= 3
        lag = metrics.registry.get_sample_value("charter_relay_lag_events")
        assert lag is not None
        assert lag >= 3
        seconds = metrics.registry.get_sample_value("charter_relay_lag_seconds")
        assert seconds is not None
        assert 0.05 <= seconds < 60
        assert await relay.drain() == 0
        assert metrics.registry.get_sample_value("charter_relay_lag_events") == 0
        assert metrics.registry.get_sample_value("charter_relay_lag_seconds") == 0
    finally:
        await db.dispose()


def test_tallied_requests_and_lookups_reach_the_metrics_at_a_scrape() -> None:
    metrics = Metrics()
    for seconds in (0.0001, 0.003, 0.003, 120.0):  # the first bucket, the 0.005 one, +Inf
        metrics.request("GET", "/r", 200, seconds)
    metrics.lookup("local", "hit", 2)
    metrics.read("local")
    text = metrics.render().decode()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    labels = (("method", "GET"), ("route", "/r"), ("status", "200"))
    assert samples[("charter_http_requests_total", labels)] == 4
    histogram = "charter_http_request_duration_seconds"
    assert samples[(f"{histogram}_count", labels)] == 4
    assert samples[(f"{histogram}_sum", labels)] == pytest.approx(120.0061)
    assert samples[(f"{histogram}_bucket", (("le", "0.0005"), *labels))] == 1
    assert samples[(f"{histogram}_bucket", (("le", "0.005"), *labels))] == 3
    assert samples[(f"{histogram}_bucket", (("le", "+Inf"), *labels))] == 4
    lookups = (("result", "hit"), ("tier", "local"))
    assert samples[("charter_cache_lookups_total", lookups)] == 2
    assert samples[("charter_prompt_reads_total", (("source", "local"),))] == 1
    # Flushed once: a second scrape counts nothing twice.
    again = metrics.render().decode()
    assert 'charter_http_requests_total{method="GET",route="/r",status="200"} 4.0' in again
