"""No stale refill: a reader that read before a change can never store its result after it.

The reader is paused between its database read and its cache write; the change commits (and
invalidates) in that pause. Without stamped entries the reader would put the old prompt back
and every later read would serve it.
"""

from __future__ import annotations

from litestar import Litestar

from charter.runtime import Runtime
from charter.services import writes
from charter.services.writes import Actor, Expected, Patch
from tests.support.api import Api


async def test_a_reader_paused_across_a_change_cannot_store_the_old_prompt(
    api: Api, app: Litestar
) -> None:
    runtime: Runtime = app.state.runtime
    root = await api.create(title="Root", body="old text", owner_agent_id="x")
    url = f"/v1/realms/{api.realm}/agents/x/prompt"
    committed: list[int] = []

    async def change_during_the_pause() -> None:
        if committed:
            return
        # Runs on the app's own loop, between the reader's query and its cache write.
        async with runtime.write(api.realm) as conn:
            outcome = await writes.update(
                conn,
                api.realm,
                Actor("test"),
                root["id"],
                Expected(root["revision"], via_header=True),
                Patch(body="new text"),
                max_depth=16,
            )
        committed.append(outcome.directive.revision)

    runtime.prompts.before_store = change_during_the_pause
    try:
        raced = await api.client.get(url)
    finally:
        runtime.prompts.before_store = None
    assert committed == [2]
    # The raced read answers from the snapshot it read: the change had not committed yet.
    assert raced.json()["text"] == "# Root\n\nold text"

    after = await api.client.get(url)
    assert after.status_code == 200
    assert after.json()["text"] == "# Root\n\nnew text"
    assert after.headers["etag"] != raced.headers["etag"]
    cached = runtime.prompts.local.get((api.realm, "x"))
    assert cached is None or cached.composition_id == after.json()["composition_id"]
