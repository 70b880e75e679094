"""Template variables over the API (DESIGN §9): values, ids, invalidation, and the refusal of
every kind of write that would leave an affected agent's prompt with an undefined variable."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.api import Api
from tests.support.checks import assert_problem, if_match
from tests.support.rollouts import put_rollout
from tests.support.variables import (
    assert_undefined,
    defaults_url,
    profile_url,
    prompt,
    realm_state,
    set_defaults,
    set_profile,
)


async def _team(api: Api, team_body: str = "Team body") -> tuple[dict[str, Any], dict[str, Any]]:
    root = await api.create(title="Realm", body="Root body")
    team = await api.child(root, title="Blue", body=team_body)
    return root, team


async def test_placeholders_take_profile_then_defaults_then_built_ins(api: Api) -> None:
    await set_defaults(api, {"tone": "calm", "lang": "English"})
    await set_profile(api, "agent-a", {"tone": "brisk"})
    _, team = await _team(api)
    body = "You are {{agent_id}} in {{realm_id}}, on team {{team}}; {{tone}}, {{lang}}; {{{{x}}"
    await api.child(team, level="agent", title="A", body=body, owner_agent_id="agent-a")
    await api.child(team, level="agent", title="B", body=body, owner_agent_id="agent-b")
    a, b = await prompt(api, "agent-a"), await prompt(api, "agent-b")
    assert a["text"].endswith(
        f"You are agent-a in {api.realm}, on team Blue; brisk, English; {{{{x}}}}"
    )
    assert b["text"].endswith(
        f"You are agent-b in {api.realm}, on team Blue; calm, English; {{{{x}}}}"
    )
    assert a["composition_id"] != b["composition_id"]


async def test_the_id_covers_the_values_and_resolves_to_its_text_forever(api: Api) -> None:
    await set_defaults(api, {"tone": "calm"})
    _, team = await _team(api)
    await api.child(team, level="agent", title="A", body="Be {{tone}}.", owner_agent_id="agent-a")
    first = await prompt(api, "agent-a")
    await set_defaults(api, {"tone": "bold"})
    second = await prompt(api, "agent-a")
    assert second["text"].endswith("Be bold.")
    assert first["text"].endswith("Be calm.")
    assert first["composition_id"] != second["composition_id"]
    await set_defaults(api, {"tone": "calm"})
    assert (await prompt(api, "agent-a"))["composition_id"] == first["composition_id"]
    url = f"/v1/realms/{api.realm}/compositions/{second['composition_id']}"
    resolved = await api.client.get(url)
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["text"] == second["text"]


async def test_a_prompt_without_placeholders_keeps_its_id(api: Api) -> None:
    _, team = await _team(api)
    await api.child(team, level="agent", title="A", body="Plain", owner_agent_id="agent-a")
    before = await prompt(api, "agent-a")
    await set_defaults(api, {"tone": "calm"})
    await set_profile(api, "agent-a", {"tone": "bold"})
    assert (await prompt(api, "agent-a"))["composition_id"] == before["composition_id"]


async def test_profile_cas_event_and_exact_invalidation(api: Api) -> None:
    _, team = await _team(api)
    for agent in ("agent-a", "agent-b"):
        await set_profile(api, agent, {"tone": "calm"})
        await api.child(team, level="agent", title=agent, body="{{tone}}", owner_agent_id=agent)
    b_before = await prompt(api, "agent-b")
    seq = (await api.events())[-1]["seq"]
    url = profile_url(api, "agent-a")
    stale = await api.client.put(url, json={"variables": {"tone": "x"}}, headers=if_match(0))
    assert_problem(stale, 412, "stale-revision")
    missing = await api.client.put(url, json={"variables": {"tone": "x"}})
    assert_problem(missing, 428, "precondition-required")
    done = await api.client.put(url, json={"variables": {"tone": "warm"}, "expected_revision": 1})
    assert done.status_code == 200, done.text
    assert done.json()["revision"] == 2
    assert done.headers["etag"] == '"2"'
    [event] = await api.events(seq)
    assert event["type"] == "agent.profile_updated"
    assert event["affected_agents"] == ["agent-a"]
    assert "warm" not in str(event)
    assert "calm" not in str(event)
    assert (await prompt(api, "agent-a"))["text"].endswith("warm")
    assert await prompt(api, "agent-b") == b_before


async def test_concurrent_first_writes_of_a_profile_one_wins(api: Api) -> None:
    url = profile_url(api, "agent-race")
    results = await asyncio.gather(
        *(
            api.client.put(url, json={"variables": {"n": str(i)}}, headers=if_match(0))
            for i in range(6)
        )
    )
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200] + [412] * 5
    [winner] = [r for r in results if r.status_code == 200]
    found = (await api.client.get(url)).json()
    assert found["revision"] == 1
    assert found["variables"] == winner.json()["variables"]


async def test_a_default_change_affects_exactly_the_agents_that_use_it(api: Api) -> None:
    await set_defaults(api, {"tone": "calm", "lang": "English"})
    _, team = await _team(api)
    await api.child(team, level="agent", title="A", body="{{tone}}", owner_agent_id="agent-a")
    await api.child(team, level="agent", title="B", body="{{lang}}", owner_agent_id="agent-b")
    await set_profile(api, "agent-c", {"tone": "own"})
    await api.child(team, level="agent", title="C", body="{{tone}}", owner_agent_id="agent-c")
    await api.child(team, level="agent", title="D", body="{{{{tone}}", owner_agent_id="agent-d")
    seq = (await api.events())[-1]["seq"]
    await set_defaults(api, {"tone": "bold", "lang": "English"})
    [event] = await api.events(seq)
    assert event["type"] == "realm.variables_updated"
    assert event["affected_agents"] == ["agent-a"]
    assert event["payload"] == {"names": ["tone"]}
    assert (await prompt(api, "agent-a"))["text"].endswith("bold")


async def test_bad_variables_are_refused_and_nothing_changes(api: Api) -> None:
    url = defaults_url(api)
    for variables in ({"Bad": "x"}, {"a" * 65: "x"}, {"ok": "x" * 1025}, {"ok": 3}):
        response = await api.client.put(url, json={"variables": variables}, headers=if_match(0))
        assert_problem(response, 400, "invalid-request")
    assert (await api.client.get(url)).json()["revision"] == 0
    response = await api.client.put(url, json={"variables": {"ok": "é" * 512}}, headers=if_match(0))
    assert response.status_code == 200, response.text


# --- the refusal, for each kind of write -------------------------------------------------------


async def test_create_with_an_undefined_variable_is_refused(api: Api) -> None:
    _, team = await _team(api)
    state = await realm_state(api, ["agent-a"])
    response = await api.client.post(
        api.base,
        json={
            "level": "agent",
            "parent_id": team["id"],
            "title": "A",
            "body": "Hello {{nobody}}",
            "owner_agent_id": "agent-a",
        },
    )
    assert_undefined(response, "nobody", ["agent-a"], 1)
    assert await realm_state(api, ["agent-a"]) == state


async def test_team_is_undefined_without_a_team_layer(api: Api) -> None:
    root = await api.create(title="Realm", body="Root")
    response = await api.client.post(
        api.base,
        json={
            "level": "agent",
            "parent_id": root["id"],
            "title": "A",
            "body": "on team {{team}}",
            "owner_agent_id": "agent-a",
        },
    )
    assert_undefined(response, "team", ["agent-a"], 1)


async def test_an_update_to_an_undefined_variable_is_refused(api: Api) -> None:
    _, team = await _team(api)
    agents = [f"agent-{i:02d}" for i in range(22)]
    for agent in agents:
        await api.child(team, level="agent", title=agent, body="Own", owner_agent_id=agent)
    await set_profile(api, "agent-00", {"mood": "fine"})
    state = await realm_state(api, agents)
    team = await api.get(team["id"])
    response = await api.client.patch(
        f"{api.base}/{team['id']}", json={"body": "{{mood}}"}, headers=if_match(team["revision"])
    )
    assert_undefined(response, "mood", agents[1:21], 21)
    assert await realm_state(api, agents) == state
    await set_defaults(api, {"mood": "ok"})
    await api.patch(team, body="{{mood}}")  # defined now: written


async def test_a_move_under_a_placeholder_the_agent_lacks_is_refused(api: Api) -> None:
    root = await api.create(title="Realm", body="Root")
    left = await api.child(root, title="Left", body="x is {{x}}")
    right = await api.child(root, title="Right", body="R")
    await set_profile(api, "agent-l", {"x": "1"})
    await api.child(left, level="agent", title="l", body="Own", owner_agent_id="agent-l")
    moving = await api.child(right, level="agent", title="r", body="Own", owner_agent_id="agent-r")
    state = await realm_state(api, ["agent-l", "agent-r"])
    response = await api.client.patch(
        f"{api.base}/{moving['id']}",
        json={"parent_id": left["id"]},
        headers=if_match(moving["revision"]),
    )
    assert_undefined(response, "x", ["agent-r"], 1)
    assert await realm_state(api, ["agent-l", "agent-r"]) == state


async def test_an_owner_change_to_an_agent_without_the_value_is_refused(api: Api) -> None:
    _, team = await _team(api)
    await set_profile(api, "agent-a", {"x": "1"})
    node = await api.child(team, level="agent", title="A", body="{{x}}", owner_agent_id="agent-a")
    state = await realm_state(api, ["agent-a", "agent-b"])
    response = await api.client.patch(
        f"{api.base}/{node['id']}",
        json={"owner_agent_id": "agent-b"},
        headers=if_match(node["revision"]),
    )
    assert_undefined(response, "x", ["agent-b"], 1)
    assert await realm_state(api, ["agent-a", "agent-b"]) == state


async def test_a_rollout_of_a_version_with_an_undefined_variable_is_refused(api: Api) -> None:
    _, team = await _team(api)
    await api.child(team, level="agent", title="A", body="Own", owner_agent_id="agent-a")
    team = await api.get(team["id"])
    drafted = await api.patch(team, body="{{fresh}}", activate=False)  # serves nobody: written
    state = await realm_state(api, ["agent-a"])
    response = await api.client.put(
        f"{api.base}/{team['id']}/rollout",
        json={"version": 2, "percent": 100},
        headers=if_match(drafted["revision"]),
    )
    assert_undefined(response, "fresh", ["agent-a"], 1)
    assert await realm_state(api, ["agent-a"]) == state
    await set_defaults(api, {"fresh": "new"})
    await put_rollout(api, drafted, version=2, percent=100)
    assert (await prompt(api, "agent-a"))["text"].count("new") == 1


async def test_removing_a_profile_value_in_use_is_refused(api: Api) -> None:
    _, team = await _team(api)
    await set_profile(api, "agent-a", {"x": "1", "y": "2"})
    await api.child(team, level="agent", title="A", body="{{x}}", owner_agent_id="agent-a")
    state = await realm_state(api, ["agent-a"])
    response = await api.client.put(
        profile_url(api, "agent-a"), json={"variables": {"y": "2"}}, headers=if_match(1)
    )
    assert_undefined(response, "x", ["agent-a"], 1)
    assert await realm_state(api, ["agent-a"]) == state
    assert (await api.client.get(profile_url(api, "agent-a"))).json()["revision"] == 1
    await set_profile(api, "agent-a", {"x": "1"})  # removing an unused one is fine


async def test_removing_a_default_in_use_is_refused(api: Api) -> None:
    await set_defaults(api, {"x": "1"})
    _, team = await _team(api, team_body="team {{x}}")
    agents = [f"agent-{i:02d}" for i in range(3)]
    for agent in agents:
        await api.child(team, level="agent", title=agent, body="Own", owner_agent_id=agent)
    await set_profile(api, "agent-01", {"x": "mine"})
    state = await realm_state(api, agents)
    response = await api.client.put(defaults_url(api), json={"variables": {}}, headers=if_match(1))
    assert_undefined(response, "x", ["agent-00", "agent-02"], 2)
    assert await realm_state(api, agents) == state
    assert (await api.client.get(defaults_url(api))).json()["variables"] == {"x": "1"}


async def test_malformed_requests_are_4xx_and_change_nothing(api: Api) -> None:
    url = profile_url(api, "agent-a")
    bad_bodies: list[Any] = [
        {"variables": {"ok": "x"}, "extra": 1},
        {"variables": {"ok": "x"}, "expected_revision": "0"},
        {"variables": {"ok": "x"}, "expected_revision": -1},
        {"variables": ["ok"]},
        [],
    ]
    for body in bad_bodies:
        response = await api.client.put(url, json=body)
        assert 400 <= response.status_code < 500, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
    assert_problem(await api.client.get(profile_url(api, "bad id!")), 400, "invalid-request")
    missing = "/v1/realms/t-no-such-realm-here/variables"
    assert_problem(await api.client.get(missing), 404, "not-found")
    response = await api.client.put(missing, json={"variables": {}}, headers=if_match(0))
    assert_problem(response, 404, "not-found")
    found = (await api.client.get(url)).json()
    assert (found["revision"], found["variables"]) == (0, {})


async def test_a_rollback_to_a_version_using_a_removed_default_is_refused(api: Api) -> None:
    await set_defaults(api, {"x": "1"})
    _, team = await _team(api, team_body="uses {{x}}")
    await api.child(team, level="agent", title="A", body="Own", owner_agent_id="agent-a")
    team = await api.patch(await api.get(team["id"]), body="plain now")
    await set_defaults(api, {})  # nothing uses x any more: allowed
    state = await realm_state(api, ["agent-a"])
    response = await api.client.post(
        f"{api.base}/{team['id']}/rollback",
        json={"version": 1},
        headers=if_match(team["revision"]),
    )
    assert_undefined(response, "x", ["agent-a"], 1)
    assert await realm_state(api, ["agent-a"]) == state
