import pytest
from charter.domain import tree
from charter.store import directives
from tests.store.test_state_machine import test_write_services_match_the_model as t


@pytest.mark.parametrize("which", ["cycle", "cascade"])
def test_probe(postgres_urls, monkeypatch, which):
    if which == "cycle":
        monkeypatch.setattr(tree, "check_move", lambda *a: None)
    else:
        orig = directives.set_status
        async def fake(conn, realm_id, ids, status, now):
            return await orig(conn, realm_id, ids[:1], status, now)
        monkeypatch.setattr(directives, "set_status", fake)
    t(postgres_urls)
