"""The client against a real server: CAS retries, replays, stale-if-error, watch, inject."""

from __future__ import annotations

import asyncio

import httpx
import msgspec
import pytest

from charter.client import (
    AsyncCharter,
    Charter,
    NewDirective,
    NotFound,
    Patch,
    StaleRevision,
    TransportError,
    Unauthenticated,
)
from charter.client import models as m
from tests.support.api import ADMIN_KEY
from tests.support.sdk import FAST_RETRY, new_realm
from tests.support.servers import CharterServer


def _root(charter: Charter, realm: str, **fields: object) -> m.Directive:
    new = msgspec.structs.replace(
        NewDirective(level="realm", title="Ship v2.0", body="Ship it."), **fields
    )
    return charter.create(new, realm=realm)


def test_every_read_returns_typed_structs(charter: Charter, realm: str) -> None:
    root = _root(charter, realm, key="ship", owner_agent_id="captain")
    team = charter.create(
        NewDirective(level="team", title="Eng", body="Code.", parent_id=root.id), realm=realm
    )
    changed = charter.update(team.id, Patch(body="Code well."), expected_revision=1, realm=realm)
    assert changed.changed is True
    assert changed.latest_version == 2

    assert charter.get(team.id, realm=realm).body == "Code well."
    assert charter.find("ship", realm=realm) == charter.get(root.id, realm=realm)
    assert charter.find("nope", realm=realm) is None
    assert [d.id for d in charter.iter_directives(realm=realm)] == [root.id, team.id]
    assert charter.version(team.id, 1, realm=realm).body == "Code."
    assert [v.version for v in charter.versions(team.id, realm=realm).items] == [2, 1]
    assert "+Code well." in charter.diff(team.id, 1, 2, realm=realm).diff
    assert charter.history(team.id, realm=realm).items[0].type == "directive.version_created"
    assert [a.id for a in charter.ancestry(team.id, realm=realm).ancestry] == [team.id, root.id]
    assert charter.subtree(root.id, realm=realm).children[0].id == team.id
    forest = charter.tree(realm)
    assert forest.roots[0].children[0].title == "Eng"
    assert charter.realm_info(realm).revision == forest.revision
    assert charter.agents(realm=realm).items[0].agent_id == "captain"
    events = charter.events(realm=realm)
    assert [e.type for e in events.items][:2] == ["directive.created", "directive.created"]

    rolled = charter.rollback(team.id, 1, expected_revision=2, realm=realm)
    assert rolled.active_version == 1
    charter.deactivate(team.id, expected_revision=rolled.revision, realm=realm)
    assert charter.get(team.id, realm=realm).active_version is None


def test_problems_raise_typed_exceptions(
    server: CharterServer, charter: Charter, realm: str
) -> None:
    root = _root(charter, realm)
    with pytest.raises(StaleRevision) as stale:
        charter.update(root.id, Patch(title="x"), expected_revision=7, realm=realm)
    assert stale.value.current_revision == 1
    assert stale.value.status == 412
    with pytest.raises(NotFound):
        charter.get("dir_" + "0" * 26, realm=realm)
    with (
        Charter(server.url, "chk_wrong", retry=FAST_RETRY) as stranger,
        pytest.raises(Unauthenticated),
    ):
        stranger.tree(realm)


def test_update_retries_a_conflict_by_reapplying(charter: Charter, realm: str) -> None:
    node = _root(charter, realm, body="one")
    # Someone else writes after we read revision 1.
    charter.update(node.id, Patch(body="one\ntwo"), expected_revision=1, realm=realm)
    calls: list[int] = []

    def append_three(current: m.Directive) -> Patch:
        calls.append(current.revision)
        return Patch(body=current.body + "\nthree", message="append")

    result = charter.update(
        node.id,
        Patch(body="one\nthree"),
        expected_revision=node.revision,
        retry_on_conflict=append_three,
        realm=realm,
    )
    assert calls == [2]  # re-read once, at the other writer's revision
    assert result.body == "one\ntwo\nthree"  # neither update lost
    assert result.revision == 3


def test_update_gives_up_after_max_conflicts(charter: Charter, realm: str) -> None:
    node = _root(charter, realm)

    def always_stale(current: m.Directive) -> Patch:
        # Race ourselves: every re-read is stale again by the time the patch is sent.
        charter.update(
            node.id,
            Patch(priority="high" if current.priority == "low" else "low"),
            expected_revision=current.revision,
            realm=realm,
        )
        return Patch(title=f"attempt {current.revision}")

    with pytest.raises(StaleRevision):
        charter.update(node.id, retry_on_conflict=always_stale, max_conflicts=2, realm=realm)


class _DropFirstResponse(httpx.BaseTransport):
    """Sends each request, but loses the answer to the first write: the server acted, the
    client saw a network error."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.writes: list[httpx.Request] = []
        self.answers: list[httpx.Response] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "GET":
            return response
        response.read()
        self.writes.append(request)
        self.answers.append(response)
        if len(self.writes) == 1:
            response.close()
            raise httpx.ReadError("connection reset after the request was sent", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


def test_a_write_whose_answer_is_lost_is_replayed_not_repeated(
    server: CharterServer, realm: str
) -> None:
    transport = _DropFirstResponse()
    with Charter(server.url, ADMIN_KEY, realm=realm, retry=FAST_RETRY, transport=transport) as c:
        created = c.create(NewDirective(level="realm", title="Once", body="Exactly once."))
        assert len(transport.writes) == 2
        first, second = transport.writes
        assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
        assert transport.answers[1].headers.get("Idempotent-Replayed") == "true"
        assert [d.id for d in c.iter_directives()] == [created.id]  # one effect
        assert len(c.events().items) == 1


def test_writes_get_distinct_idempotency_keys(server: CharterServer, realm: str) -> None:
    seen: list[str] = []

    def record(request: httpx.Request) -> None:
        if request.method != "GET":
            seen.append(request.headers["Idempotency-Key"])

    http = httpx.HTTPTransport()

    class Recording(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            record(request)
            return http.handle_request(request)

        def close(self) -> None:
            http.close()

    with Charter(server.url, ADMIN_KEY, realm=realm, transport=Recording()) as c:
        node = c.create(NewDirective(level="realm", title="A", body="a"))
        c.update(node.id, Patch(body="b"), expected_revision=1)
    assert len(seen) == 2
    assert len(set(seen)) == 2


def test_prompt_is_revalidated_and_served_stale_when_the_server_is_gone(
    own_server: CharterServer,
) -> None:
    with own_server.charter() as charter:
        realm = new_realm(charter)
        charter.create(
            NewDirective(level="realm", title="Ship", body="Ship it.", owner_agent_id="coder"),
            realm=realm,
        )
        with pytest.raises(NotFound):
            charter.prompt("nobody", realm=realm)
        first = charter.prompt("coder", realm=realm)
        assert first.text == "# Ship\n\nShip it."
        assert first.stale is False
        again = charter.prompt("coder", realm=realm)  # a 304 behind the scenes
        assert again == first

        own_server.stop()
        stale = charter.prompt("coder", realm=realm)
        assert stale.stale is True
        assert stale.composition_id == first.composition_id
        assert stale.text == first.text
        with pytest.raises(TransportError):
            charter.prompt("someone-never-fetched", realm=realm)

        own_server.start()
        assert charter.prompt("coder", realm=realm).stale is False


def test_inject_and_composition(charter: Charter, realm: str) -> None:
    _root(charter, realm, owner_agent_id="coder", injection_mode="system_append")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    injected = charter.inject("coder", messages, realm=realm)
    out = injected.kwargs()["messages"]
    assert out[0] == {"role": "system", "content": "Be brief.\n\n# Ship v2.0\n\nShip it."}
    assert out[1] == messages[1]
    composition = charter.composition(injected.composition_id, realm=realm)
    assert composition.text == "# Ship v2.0\n\nShip it."


def test_inject_in_each_format_hands_kwargs_to_the_sdk(charter: Charter, realm: str) -> None:
    _root(charter, realm, owner_agent_id="writer", injection_mode="system_first")
    text = "# Ship v2.0\n\nShip it."
    user = {"role": "user", "content": "Hi"}
    responses = charter.inject(
        "writer", format="openai-responses", input=[user], instructions="Be brief.", realm=realm
    )
    assert responses.format == "openai-responses"
    assert responses.kwargs() == {"input": [user], "instructions": f"{text}\n\nBe brief."}
    claude = charter.inject("writer", [user], format="anthropic", system="Be brief.", realm=realm)
    assert claude.kwargs() == {
        "system": [{"type": "text", "text": text}, {"type": "text", "text": "Be brief."}],
        "messages": [user],
    }
    chat = charter.inject("writer", [user], realm=realm)
    assert chat.kwargs() == {"messages": [{"role": "system", "content": text}, user]}
    assert claude.composition_id == chat.composition_id == responses.composition_id


def test_keys_round_trip(charter: Charter, realm: str) -> None:
    created = charter.create_key("agent", [realm], agent_id="coder", name="coder key")
    assert created.key
    assert created.id in {k.id for k in charter.keys(limit=500).items}
    charter.revoke_key(created.id)
    agent = Charter(str(charter._http.base_url), created.key, retry=FAST_RETRY)
    with agent, pytest.raises(Unauthenticated):
        agent.prompt("coder", realm=realm)


async def test_watch_resumes_after_the_server_restarts(own_server: CharterServer) -> None:
    with own_server.charter() as setup:
        realm = new_realm(setup)
        node = setup.create(
            NewDirective(level="realm", title="Ship", body="v1", owner_agent_id="coder"),
            realm=realm,
        )
    async with AsyncCharter(own_server.url, ADMIN_KEY, realm=realm, retry=FAST_RETRY) as charter:
        stream = charter.watch("coder")
        first = await asyncio.wait_for(anext(stream), 10)
        assert first.text.endswith("v1")

        # A change while connected arrives.
        await charter.update(node.id, Patch(body="v2"), expected_revision=1)
        second = await asyncio.wait_for(anext(stream), 10)
        assert second.text.endswith("v2")

        # The server goes away and comes back; a change made meanwhile arrives too, once.
        await asyncio.to_thread(own_server.stop)
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.5)
        assert not waiting.done()
        await asyncio.to_thread(own_server.start)
        await charter.update(node.id, Patch(body="v3"), expected_revision=2)
        third = await asyncio.wait_for(waiting, 20)
        assert third.text.endswith("v3")
        assert third.composition_id != second.composition_id
        await stream.aclose()


async def test_follow_events_resumes_from_the_last_seq(charter: Charter, realm: str) -> None:
    node = _root(charter, realm)
    async with AsyncCharter(
        str(charter._http.base_url), ADMIN_KEY, realm=realm, retry=FAST_RETRY
    ) as client:
        stream = client.follow_events(after=0)
        created = await asyncio.wait_for(anext(stream), 10)
        assert created.type == "directive.created"
        await client.update(node.id, Patch(body="again"), expected_revision=1)
        changed = await asyncio.wait_for(anext(stream), 10)
        assert (changed.seq, changed.type) == (created.seq + 1, "directive.version_created")
        await stream.aclose()


def test_the_sync_and_async_clients_have_the_same_methods() -> None:
    def public(cls: type) -> set[str]:
        return {name for name in vars(cls) if not name.startswith("_")}

    assert public(Charter) - {"close"} == public(AsyncCharter) - {"aclose"}
