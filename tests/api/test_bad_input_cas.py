"""Bad input to PATCH, DELETE and rollback: refused with its code, and nothing written."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.api import Api
from tests.support.refusals import (
    MALFORMED,
    MARKER,
    MAX_BODY_BYTES,
    NOT_OBJECTS,
    OVERSIZED_BODIES,
    assert_refused,
    if_match,
    metadata_of,
    send,
    sized_body,
)

# --- PATCH -------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", MALFORMED)
async def test_patch_refuses_malformed_json(api: Api, root: dict[str, Any], raw: bytes) -> None:
    request = send(api, "PATCH", f"/{root['id']}", raw, if_match(root))
    await assert_refused(api, request, 400, "invalid-request")


@pytest.mark.parametrize("body", NOT_OBJECTS)
async def test_patch_refuses_json_that_is_not_an_object(
    api: Api, root: dict[str, Any], body: Any
) -> None:
    request = send(api, "PATCH", f"/{root['id']}", body, if_match(root))
    await assert_refused(api, request, 400, "invalid-request")


PATCH_REFUSALS = [
    # unknown or read-only fields
    ({"level": "team"}, "level"),
    ({"id": "dir_" + "0" * 26}, "id"),
    ({"revision": 9}, "revision"),
    ({"active_version": 1}, "active-version"),
    ({"titel": f"{MARKER} typo"}, "typo"),
    # wrong types
    ({"title": 5}, "title-int"),
    ({"title": None}, "title-null"),
    ({"body": None}, "body-null"),
    ({"body": [MARKER]}, "body-list"),
    ({"reopen": "true"}, "reopen-string"),
    ({"reopen": 1}, "reopen-int"),
    ({"cascade": "yes"}, "cascade-string"),
    ({"cascade": None}, "cascade-null"),
    ({"metadata": "x"}, "metadata-string"),
    ({"metadata": None}, "metadata-null"),
    ({"priority": None}, "priority-null"),
    ({"status": None}, "status-null"),
    ({"message": 5}, "message-int"),
    ({"parent_id": 5}, "parent-int"),
    # bad enums
    ({"status": "done"}, "status-done"),
    ({"status": "ACTIVE"}, "status-upper"),
    ({"priority": "urgent"}, "priority-urgent"),
    ({"injection_mode": "system_last"}, "mode-system-last"),
    # NUL bytes
    ({"title": f"{MARKER}\x00"}, "nul-title"),
    ({"body": f"{MARKER}\x00"}, "nul-body"),
    ({"title": f"{MARKER} ok", "message": f"{MARKER}\x00"}, "nul-message"),
    ({"metadata": {"k\x00": 1}}, "nul-metadata-key"),
    ({"metadata": {"k": f"{MARKER}\x00"}}, "nul-metadata-value"),
    # content rules
    ({"title": ""}, "title-empty"),
    ({"title": "  "}, "title-blank"),
    ({"title": f"{MARKER}\nline two"}, "title-multiline"),
    ({"title": MARKER + "t" * (257 - len(MARKER))}, "title-257"),
    ({"body": ""}, "body-empty"),
    ({"title": f"{MARKER} ok", "message": MARKER + "m" * 4096}, "message-too-long"),
    # metadata rules
    ({"metadata": {"charter.owner": "x"}}, "metadata-reserved"),
    ({"metadata": metadata_of(8 * 1024 + 1)}, "metadata-over-8KiB"),
    # patterns
    ({"key": "Root"}, "key-upper"),
    ({"key": ""}, "key-empty"),
    ({"key": "root\n"}, "key-newline"),
    ({"owner_agent_id": "a b"}, "owner-space"),
    ({"owner_agent_id": ""}, "owner-empty"),
    ({"owner_agent_id": "a" * 129}, "owner-129"),
    ({"parent_id": "nope"}, "parent-malformed"),
    ({"parent_id": "dir_" + "0" * 26 + "\n"}, "parent-newline"),
]


@pytest.mark.parametrize(
    "fields", [pytest.param(fields, id=name) for fields, name in PATCH_REFUSALS]
)
async def test_patch_refuses_bad_fields(
    api: Api, root: dict[str, Any], fields: dict[str, Any]
) -> None:
    request = send(api, "PATCH", f"/{root['id']}", fields, if_match(root))
    await assert_refused(api, request, 400, "invalid-request")


@pytest.mark.parametrize("text", OVERSIZED_BODIES)
async def test_patch_counts_the_body_limit_in_utf8_bytes(
    api: Api, root: dict[str, Any], text: str
) -> None:
    request = send(api, "PATCH", f"/{root['id']}", {"body": text}, if_match(root))
    await assert_refused(api, request, 400, "content-too-large")


async def test_patch_accepts_a_body_of_exactly_the_limit_in_multibyte_text(
    api: Api, root: dict[str, Any]
) -> None:
    text = sized_body("😀", MAX_BODY_BYTES)
    updated = await api.patch(root, body=text)
    assert updated["body"] == text
    assert updated["latest_version"] == 3


@pytest.mark.parametrize(
    "expected",
    [0, -1, "2", 2.5, True, None, [2], {"revision": 2}],
    ids=["zero", "negative", "string", "float", "bool", "null", "list", "object"],
)
async def test_patch_refuses_a_bad_expected_revision(
    api: Api, root: dict[str, Any], expected: Any
) -> None:
    assert root["revision"] == 2  # so "2" and 2.5 would be right if coerced
    body = {"title": f"{MARKER} new", "expected_revision": expected}
    await assert_refused(api, send(api, "PATCH", f"/{root['id']}", body), 400, "invalid-request")


BAD_IF_MATCH = [
    pytest.param("*", id="star"),
    pytest.param("abc", id="word"),
    pytest.param('"abc"', id="quoted-word"),
    pytest.param('""', id="empty-quotes"),
    pytest.param("", id="empty"),
    pytest.param('"-1"', id="negative"),
    pytest.param('"1.5"', id="decimal"),
    pytest.param('"2", "3"', id="list"),
    pytest.param('"2', id="unterminated"),
    pytest.param('W/"', id="weak-nothing"),
    pytest.param('"0x2"', id="hex"),
    pytest.param('"' + "9" * 19 + '"', id="19-digits"),
]


@pytest.mark.parametrize("header", BAD_IF_MATCH)
@pytest.mark.parametrize("write", ["patch", "delete", "rollback"])
async def test_cas_writes_refuse_a_malformed_if_match(
    api: Api, root: dict[str, Any], write: str, header: str
) -> None:
    headers = {"If-Match": header}
    request = {
        "patch": lambda: send(api, "PATCH", f"/{root['id']}", {"title": f"{MARKER} x"}, headers),
        "delete": lambda: send(api, "DELETE", f"/{root['id']}", headers=headers),
        "rollback": lambda: send(api, "POST", f"/{root['id']}/rollback", {"version": 1}, headers),
    }[write]()
    await assert_refused(api, request, 400, "invalid-request")


@pytest.mark.parametrize("write", ["patch", "delete", "rollback"])
async def test_cas_writes_without_an_expected_revision_get_428(
    api: Api, root: dict[str, Any], write: str
) -> None:
    request = {
        "patch": lambda: send(api, "PATCH", f"/{root['id']}", {"title": f"{MARKER} x"}),
        "delete": lambda: send(api, "DELETE", f"/{root['id']}"),
        "rollback": lambda: send(api, "POST", f"/{root['id']}/rollback", {"version": 1}),
    }[write]()
    await assert_refused(api, request, 428, "precondition-required")


@pytest.mark.parametrize("write", ["patch", "delete", "rollback"])
async def test_cas_writes_refuse_an_if_match_that_disagrees_with_the_body(
    api: Api, root: dict[str, Any], write: str
) -> None:
    headers = if_match(root)
    stale = root["revision"] - 1
    request = {
        "patch": lambda: send(
            api, "PATCH", f"/{root['id']}", {"title": "x", "expected_revision": stale}, headers
        ),
        "delete": lambda: send(
            api, "DELETE", f"/{root['id']}", {"expected_revision": stale}, headers
        ),
        "rollback": lambda: send(
            api,
            "POST",
            f"/{root['id']}/rollback",
            {"version": 1, "expected_revision": stale},
            headers,
        ),
    }[write]()
    await assert_refused(api, request, 400, "invalid-request")


async def test_patch_refuses_a_parent_that_does_not_exist(
    api: Api, tree: dict[str, dict[str, Any]]
) -> None:
    team = tree["team"]
    request = send(api, "PATCH", f"/{team['id']}", {"parent_id": "dir_" + "0" * 26}, if_match(team))
    await assert_refused(api, request, 422, "invalid-hierarchy")


async def test_patch_refuses_a_parent_in_another_realm(
    api: Api, tree: dict[str, dict[str, Any]], foreign: dict[str, Any]
) -> None:
    team = tree["team"]
    request = send(api, "PATCH", f"/{team['id']}", {"parent_id": foreign["id"]}, if_match(team))
    await assert_refused(api, request, 422, "invalid-hierarchy")


@pytest.mark.parametrize(
    ("node", "parent", "status", "code"),
    [
        ("team", None, 422, "invalid-hierarchy"),  # a team cannot be a root
        ("team", "agent", 409, "cycle-detected"),  # its own descendant
        ("team", "team", 409, "cycle-detected"),  # itself
        ("root", "team", 409, "cycle-detected"),
    ],
)
async def test_patch_refuses_moves_the_tree_forbids(
    api: Api,
    tree: dict[str, dict[str, Any]],
    node: str,
    parent: str | None,
    status: int,
    code: str,
) -> None:
    moving = tree[node]
    parent_id = tree[parent]["id"] if parent else None
    request = send(api, "PATCH", f"/{moving['id']}", {"parent_id": parent_id}, if_match(moving))
    await assert_refused(api, request, status, code)


async def test_patch_refuses_a_key_already_used(api: Api, tree: dict[str, dict[str, Any]]) -> None:
    team = tree["team"]
    request = send(api, "PATCH", f"/{team['id']}", {"key": "root"}, if_match(team))
    await assert_refused(api, request, 409, "already-exists")


# --- DELETE ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"expected_revision": ', id="truncated"),
        pytest.param(b"[]", id="array"),
        pytest.param(b'"2"', id="string"),
        pytest.param(b'{"title": "x"}', id="unknown-field"),
        pytest.param(b'{"expected_revision": "2"}', id="revision-string"),
        pytest.param(b'{"expected_revision": 0}', id="revision-zero"),
        pytest.param(b'{"expected_revision": -2}', id="revision-negative"),
        pytest.param(b'{"expected_revision": 2.0}', id="revision-float"),
        pytest.param(b'{"expected_revision": 2, "message": "a\\u0000b"}', id="nul-message"),
        pytest.param(b'{"expected_revision": 2, "message": 5}', id="message-int"),
        pytest.param(b'{"expected_revision": 2, "message": "\xff"}', id="invalid-utf8"),
        pytest.param(b'{"m": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", id="too-deep"),
    ],
)
async def test_delete_refuses_a_bad_body(api: Api, root: dict[str, Any], body: bytes) -> None:
    await assert_refused(api, send(api, "DELETE", f"/{root['id']}", body), 400, "invalid-request")


# --- rollback ----------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", MALFORMED)
async def test_rollback_refuses_malformed_json(api: Api, root: dict[str, Any], raw: bytes) -> None:
    request = send(api, "POST", f"/{root['id']}/rollback", raw, if_match(root))
    await assert_refused(api, request, 400, "invalid-request")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="no-version"),
        pytest.param({"version": 0}, id="version-zero"),
        pytest.param({"version": -1}, id="version-negative"),
        pytest.param({"version": "1"}, id="version-string"),
        pytest.param({"version": 1.0}, id="version-float"),
        pytest.param({"version": None}, id="version-null"),
        pytest.param({"version": True}, id="version-bool"),
        pytest.param({"version": 1, "title": "x"}, id="unknown-field"),
        pytest.param({"version": 1, "message": "a\x00b"}, id="nul-message"),
        pytest.param({"version": 1, "message": "m" * 4097}, id="message-too-long"),
        pytest.param({"version": 1, "expected_revision": "2"}, id="revision-string"),
        pytest.param({"version": 1, "expected_revision": 0}, id="revision-zero"),
        pytest.param([{"version": 1}], id="array"),
    ],
)
async def test_rollback_refuses_bad_bodies(api: Api, root: dict[str, Any], body: Any) -> None:
    request = send(api, "POST", f"/{root['id']}/rollback", body, if_match(root))
    await assert_refused(api, request, 400, "invalid-request")


@pytest.mark.parametrize("version", [3, 99, 2**31 - 1, 2**31, 2**63, 10**30])
async def test_rollback_to_a_version_never_made_is_404(
    api: Api, root: dict[str, Any], version: int
) -> None:
    request = send(api, "POST", f"/{root['id']}/rollback", {"version": version}, if_match(root))
    await assert_refused(api, request, 404, "not-found")
