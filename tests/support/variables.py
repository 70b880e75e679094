"""Template-variable test helpers: profiles, realm defaults, prompts, and "nothing written"."""

from __future__ import annotations

from typing import Any

from tests.support.api import Api
from tests.support.checks import assert_problem, if_match, realm_revision


def profile_url(api: Api, agent: str) -> str:
    return f"/v1/realms/{api.realm}/agents/{agent}/profile"


def defaults_url(api: Api) -> str:
    return f"/v1/realms/{api.realm}/variables"


async def put_vars(api: Api, url: str, variables: dict[str, str], expect: int = 200) -> Any:
    """Replace the map at `url` at its current revision."""
    current = await api.client.get(url)
    assert current.status_code == 200, current.text
    response = await api.client.put(
        url, json={"variables": variables}, headers=if_match(current.json()["revision"])
    )
    assert response.status_code == expect, response.text
    return response.json()


async def set_profile(api: Api, agent: str, variables: dict[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = await put_vars(api, profile_url(api, agent), variables)
    return result


async def set_defaults(api: Api, variables: dict[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = await put_vars(api, defaults_url(api), variables)
    return result


async def prompt(api: Api, agent: str) -> dict[str, Any]:
    response = await api.client.get(f"/v1/realms/{api.realm}/agents/{agent}/prompt")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def realm_state(api: Api, agents: list[str]) -> tuple[int, list[str | None]]:
    """The realm revision and the agents' prompt texts (None: owns nothing)."""
    texts: list[str | None] = []
    for agent in agents:
        response = await api.client.get(f"/v1/realms/{api.realm}/agents/{agent}/prompt")
        texts.append(response.json()["text"] if response.status_code == 200 else None)
    return await realm_revision(api), texts


def assert_undefined(response: Any, variable: str, agents: list[str], count: int) -> None:
    body = assert_problem(response, 422, "undefined-variable")
    assert body["variable"] == variable
    assert body["agents"] == agents
    assert body["count"] == count
