from __future__ import annotations

from tests.support.api import Api


async def test_create_then_get_round_trips(api: Api) -> None:
    root = await api.create(title="Ship v2.0", body="Ship it.", owner_agent_id="lead")
    assert root["revision"] == 1
    assert root["active_version"] == 1
    found = await api.get(root["id"])
    assert found["title"] == "Ship v2.0"
    assert found["body"] == "Ship it."
