from __future__ import annotations
from typing import Any
from litestar import Litestar
from litestar.testing import AsyncTestClient
from tests.support.api import Api
from tests.support.checks import other_realm

DEEP: Any = []
for _ in range(200):
    DEEP = [DEEP]

async def test_probe(api: Api, client: AsyncTestClient[Litestar]) -> None:
    node = await api.create(title="t", body="b", owner_agent_id="a1")
    other = await other_realm(api)
    onode = await other.create(title="t", body="b", owner_agent_id="a1")
    c = (await client.post(f"{api.base}/{node['id']}/claims", json={"agent_id": "a1", "lease_seconds": 30})).json()
    s = (await client.post(f"{api.base}/{node['id']}/schedules", json={"at": "2030-01-01T00:00:00Z", "action": {"promote": True}})).json()
    w = await client.post(f"/v1/realms/{api.realm}/webhooks", json={"url": "http://127.0.0.1:9/x", "events": ["*"]})
    wid = w.json().get("id")
    print("webhook", w.status_code, w.text[:200])
    reqs: list[tuple[str, str, Any]] = [
        ("POST", f"{other.base}/{onode['id']}/claims/{c['id']}/heartbeat", None),
        ("POST", f"{other.base}/{onode['id']}/claims/{c['id']}/finish", {"outcome": "failed"}),
        ("POST", f"{other.base}/{node['id']}/claims", {"agent_id": "a1", "lease_seconds": 30}),
        ("DELETE", f"{other.base}/{onode['id']}/schedules/{s['id']}", None),
        ("GET", f"{other.base}/{node['id']}/schedules", None),
        ("GET", f"/v1/realms/{other.realm}/webhooks/{wid}", None),
        ("DELETE", f"/v1/realms/{other.realm}/webhooks/{wid}", None),
        ("POST", f"/v1/realms/{other.realm}/webhooks/{wid}/enable", None),
        ("GET", f"/v1/realms/{other.realm}/webhooks/{wid}/deliveries", None),
        ("POST", f"/v1/realms/{other.realm}/webhooks/{wid}/deliveries/dlv_00000000000000000000000000/retry", None),
        ("GET", f"{other.base}/{node['id']}/rollout", None),
        ("POST", f"{api.base}/{node['id']}/claims/{c['id']}/finish", {"outcome": "succeeded", "result": DEEP}),
        ("POST", f"{api.base}/{node['id']}/claims/{c['id']}/finish", {"outcome": "succeeded", "result": "a\x00b"}),
        ("POST", f"{api.base}/{node['id']}/claims/{c['id']}/finish", {"outcome": "succeeded", "result": {"a\x00": 1}}),
        ("POST", f"{api.base}/{node['id']}/claims/{c['id']}/finish", {"outcome": "succeeded", "result": 10**30}),
        ("POST", f"{api.base}/{node['id']}/claims/{c['id']}/heartbeat", {"lease_seconds": 10**30}),
        ("POST", f"{api.base}/{node['id']}/schedules", {"at": "9999-12-31T23:59:59Z", "action": {"activate": 10**20}}),
        ("POST", f"{api.base}/{node['id']}/schedules", {"at": "0001-01-01T00:00:00Z", "action": {"activate": 1}}),
        ("POST", f"{api.base}/{node['id']}/schedules", {"at": "9999-12-31T23:59:59-23:59", "action": {"activate": 1}}),
        ("POST", f"{api.base}/{node['id']}/schedules", {"at": "2030-01-01T00:00:00Z", "action": {"rollout": {"percent": 1e308}}}),
        ("POST", f"{api.base}/{node['id']}/schedules", {"at": "2030-01-01T00:00:00Z", "action": {"rollout": {"percent": True}}}),
        ("POST", f"{api.base}/{node['id']}/schedules", {"at": "2030-01-01T00:00:00Z", "action": {"status": "completed"}, "expected_revision": 2**63}),
        ("PUT", f"{api.base}/{node['id']}/rollout", {"version": 2**62, "percent": 1, "expected_revision": 1}),
        ("PUT", f"{api.base}/{node['id']}/rollout", {"version": 1, "percent": 1, "expected_revision": 2**63 - 1}),
        ("PUT", f"{api.base}/{node['id']}/rollout", {"version": 1, "percent": 1, "expected_revision": 1, "guard": {"metric": "m", "higher_is_better": True, "min_samples": 2, "max_regression": 1e308}}),
        ("GET", f"/v1/realms/{api.realm}/claims?wait=1e400&agent_id=a1", None),
        ("GET", f"/v1/realms/{api.realm}/claims?limit=99999999999999999999", None),
        ("GET", f"/v1/realms/{api.realm}/claims?cursor=%00", None),
        ("GET", f"/v1/realms/{api.realm}/claims?state=%00", None),
        ("GET", f"/v1/realms/{api.realm}/webhooks?cursor=zzzz", None),
        ("POST", f"/v1/realms/{api.realm}/webhooks", {"url": "http://127.0.0.1:9/\x00", "events": ["*"]}),
        ("POST", f"/v1/realms/{api.realm}/webhooks", {"url": "http://[::1/", "events": ["*"]}),
        ("POST", f"/v1/realms/{api.realm}/webhooks", {"url": "http://127.0.0.1:99999/", "events": ["*"]}),
        ("POST", f"/v1/realms/{api.realm}/webhooks", {"url": "http://" + "a" * 300 + ".com/", "events": ["*"]}),
        ("POST", f"/v1/realms/{api.realm}/webhooks", {"url": "http://127.0.0.1:9/", "events": ["nope"]}),
        ("POST", f"/v1/realms/{api.realm}/webhooks", {"url": "http://127.0.0.1:9/", "events": []}),
        ("POST", f"/v1/realms/{api.realm}/webhooks", {"url": "http://127.0.0.1:9/", "events": ["*"], "agents": []}),
        ("POST", f"/v1/realms/{api.realm}/webhooks", {"url": "http://user:pw@127.0.0.1:9/", "events": ["*"]}),
        ("POST", f"/v1/realms/{api.realm}/webhooks", {"url": "http://xn--/", "events": ["*"]}),
        ("POST", f"/v1/realms/{api.realm}/webhooks", {"url": "http://\u00e9\u0301.invalid/", "events": ["*"]}),
        ("POST", f"/v1/realms/{api.realm}/webhooks", {"url": "http://a..b/", "events": ["*"]}),
        ("POST", f"/v1/realms/{api.realm}/agents/a1/inject", {"format": "openai-responses", "input": [[[[[]]]]]}),
        ("POST", f"/v1/realms/{api.realm}/agents/a1/inject", {"format": "anthropic", "system": [{"type": "text"}], "messages": []}),
        ("POST", f"/v1/realms/{api.realm}/agents/a1/inject", {"format": "anthropic", "system": [1], "messages": [{"role": "user", "content": [1]}]}),
        ("POST", f"/v1/realms/{api.realm}/agents/a1/inject", {"format": "anthropic", "messages": [{"role": "user"}]}),
        ("POST", f"/v1/realms/{api.realm}/agents/a1/inject", {"format": "openai-responses", "input": [{"type": "message"}]}),
        ("POST", f"/v1/realms/{api.realm}/agents/a1/inject", {"format": "openai-responses", "input": [{"role": "system", "content": [None]}]}),
        ("POST", f"/v1/realms/{api.realm}/agents/a1/inject", {"format": "openai-responses", "input": "x", "instructions": [1]}),
        ("POST", f"/v1/realms/{api.realm}/agents/a1/inject", {"format": "openai-chat", "messages": [{"role": "system", "content": None}]}),
        ("POST", f"/v1/realms/{api.realm}/agents/a1/inject", {"format": "openai-chat", "messages": [{"role": "system", "content": [{"type": "text"}]}]}),
        ("POST", f"/v1/realms/{api.realm}/agents/a1/inject", {"format": "openai-chat", "messages": [{"role": "system", "content": [None]}]}),
    ]
    for method, url, body in reqs:
        r = await client.request(method, url, json=body) if body is not None else await client.request(method, url)
        print(r.status_code, method, url[-60:], r.text[:160])
