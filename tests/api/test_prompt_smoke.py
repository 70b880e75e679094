from __future__ import annotations

from tests.conftest import Api


async def test_prompt_composes_the_ancestry(api: Api) -> None:
    root = await api.create(title="Ship", body="Ship v2.")
    team = await api.child(root, title="Backend", body="Keep the API stable.")
    await api.child(team, level="agent", title="Migrations", body="Write them.", owner_agent_id="coder")
    response = await api.client.get(f"/v1/realms/{api.realm}/agents/coder/prompt")
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["text"] == "# Ship\n\nShip v2.\n\n## Backend\n\nKeep the API stable.\n\n### Migrations\n\nWrite them."
    assert response.headers["etag"] == f'"{doc["composition_id"]}"'
    again = await api.client.get(
        f"/v1/realms/{api.realm}/agents/coder/prompt", headers={"If-None-Match": response.headers["etag"]}
    )
    assert again.status_code == 304
    await api.patch(root, body="Ship v3.")
    changed = await api.client.get(
        f"/v1/realms/{api.realm}/agents/coder/prompt", headers={"If-None-Match": response.headers["etag"]}
    )
    assert changed.status_code == 200
    assert changed.json()["text"].startswith("# Ship\n\nShip v3.")
    resolved = await api.client.get(f"/v1/realms/{api.realm}/compositions/{doc['composition_id']}")
    assert resolved.status_code == 200
    assert resolved.json()["text"] == doc["text"]
