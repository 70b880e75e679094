"""A program written against the client openapi-python-client generates from the document.

tests/live/test_generated_client.py generates the client (`charter_openapi`), type-checks it
with this file under mypy --strict, and runs this file against a live server:
    python generated_flow.py BASE_URL KEY REALM
It prints what it saw as one JSON object; every step asserts what it needs first.
"""

from __future__ import annotations

import json
import sys

import httpx
from charter_openapi import AuthenticatedClient
from charter_openapi.api.directives import create_directive, get_directive, update_directive
from charter_openapi.api.realms import create_realm
from charter_openapi.models import (
    DirectiveCreate,
    DirectiveOut,
    DirectivePatch,
    Level,
    Problem,
    PromptDocument,
    RealmCreate,
    RealmOut,
)
from charter_openapi.types import Response
from httpx_sse import connect_sse

AGENT = "generated-agent"


def main(base_url: str, key: str, realm: str) -> dict[str, object]:
    seen: dict[str, object] = {}
    timeout = httpx.Timeout(10.0)
    with AuthenticatedClient(base_url=base_url, token=key, timeout=timeout) as client:
        made = create_realm.sync_detailed(client=client, body=RealmCreate(id=realm))
        assert isinstance(made.parsed, RealmOut), made.content
        root = create_directive.sync_detailed(
            realm, client=client, body=DirectiveCreate(level=Level.REALM, title="r", body="r")
        )
        assert isinstance(root.parsed, DirectiveOut), root.content
        body = DirectiveCreate(
            level=Level.AGENT, title="t", body="v1", parent_id=root.parsed.id, owner_agent_id=AGENT
        )
        created = create_directive.sync_detailed(realm, client=client, body=body)
        assert isinstance(created.parsed, DirectiveOut), created.content
        directive = created.parsed
        seen["created"] = {"status": int(created.status_code), "etag": created.headers["ETag"]}
        seen["location"] = created.headers["Location"]

        def update(text: str, if_match: str, key: str) -> Response[DirectiveOut | Problem]:
            return update_directive.sync_detailed(
                realm,
                directive.id,
                client=client,
                body=DirectivePatch(body=text),
                if_match=if_match,
                idempotency_key=key,
            )

        first = update("v2", created.headers["ETag"], "gen-1")
        assert isinstance(first.parsed, DirectiveOut), first.content
        replayed = update("v2", created.headers["ETag"], "gen-1")
        assert isinstance(replayed.parsed, DirectiveOut), replayed.content
        seen["updated"] = {
            "revision": first.parsed.revision,
            "etag": first.headers["ETag"],
            "replayed": replayed.headers.get("Idempotent-Replayed"),
            "replayed_revision": replayed.parsed.revision,
        }
        stale = update("v3", created.headers["ETag"], "gen-2")
        assert isinstance(stale.parsed, Problem), stale.content
        seen["stale"] = {
            "status": int(stale.status_code),
            "code": stale.parsed.code,
            "current_revision": stale.parsed.current_revision,
            "etag": stale.headers["ETag"],
        }
        shown = get_directive.sync(realm, directive.id, client=client)
        assert isinstance(shown, DirectiveOut)
        seen["body"] = shown.body

        # A stream never ends: read it through the generated client's own httpx client.
        path = f"/v1/realms/{realm}/agents/{AGENT}/prompt/stream"
        with connect_sse(client.get_httpx_client(), "GET", path) as source:
            event = next(source.iter_sse())
        prompt = PromptDocument.from_dict(json.loads(event.data))
        seen["event"] = {"event": event.event, "id": event.id, "agent": prompt.agent_id}
        seen["composition_id"] = prompt.composition_id
        seen["prompt_text"] = prompt.text
    return seen


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], sys.argv[3])))
