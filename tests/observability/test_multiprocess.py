"""Several workers: each writes its metrics to PROMETHEUS_MULTIPROC_DIR, any scrape merges."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from charter.server_cli import metrics_directory
from tests.observability.test_metrics import documented, served

WORKER = """
import sys
from charter.observability.metrics import Metrics
m = Metrics()
m.request("GET", "/healthz", 200, 0.001)
m.lookup("local", "hit", 3)
m.watchers.labels("long_poll").inc(int(sys.argv[1]))
m.relay_lag_seconds.set(float(sys.argv[1]))
if sys.argv[2] == "render":
    sys.stdout.write(m.render().decode())
"""


def _worker(directory: Path, n: int, render: bool) -> str:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    args = [sys.executable, "-c", WORKER, str(n), "render" if render else "quiet"]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def test_a_scrape_merges_every_workers_values(tmp_path: Path) -> None:
    _worker(tmp_path, 2, render=False)
    text = _worker(tmp_path, 5, render=True)
    families = served(text)
    table = documented()
    assert {n: k for n, (k, _) in families.items()} == {n: k for n, (k, _) in table.items()}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    ok = (("method", "GET"), ("route", "/healthz"), ("status", "200"))
    assert samples[("charter_http_requests_total", ok)] == 2  # one per worker, added up
    assert samples[("charter_cache_lookups_total", (("result", "hit"), ("tier", "local")))] == 6
    assert samples[("charter_relay_lag_seconds", ())] == 5  # the largest


def test_serve_makes_and_removes_the_directory_for_several_workers() -> None:
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    with metrics_directory(1) as none:
        assert none is None
    with metrics_directory(3) as made:
        assert made is not None
        assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == made
        assert Path(made).is_dir()
    assert not Path(made).exists()
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
