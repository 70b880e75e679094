"""Bad input to directive creation: a 4xx problem with its stable code, and nothing written.

Each refused write is checked against the whole realm before and after (revision, event feed,
every node and its versions), and no error may echo the directive text that was sent. Siblings:
`test_bad_input_cas.py` (PATCH, DELETE, rollback), `_paths.py` (ids in paths), `_reads.py`
(query parameters), `_realms.py`; `test_problem_details.py` holds the properties.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from httpx import Response

from tests.support.api import Api
from tests.support.refusals import (
    JSON,
    MALFORMED,
    MARKER,
    MAX_BODY_BYTES,
    MAX_REQUEST_BYTES,
    NOT_OBJECTS,
    OVERSIZED_BODIES,
    assert_refused,
    if_match,
    metadata_of,
    send,
    sized_body,
    valid_create,
)

# --- POST /v1/realms/{r}/directives ---------------------------------------------------------


@pytest.mark.parametrize("raw", MALFORMED)
async def test_create_refuses_malformed_json(api: Api, root: dict[str, Any], raw: bytes) -> None:
    await assert_refused(api, send(api, "POST", body=raw), 400, "invalid-request")


@pytest.mark.parametrize("body", NOT_OBJECTS)
async def test_create_refuses_json_that_is_not_an_object(
    api: Api, root: dict[str, Any], body: Any
) -> None:
    await assert_refused(api, send(api, "POST", body=body), 400, "invalid-request")


@pytest.mark.parametrize(
    "extra",
    [
        {"levle": "team"},
        {"id": "dir_01j00000000000000000000000"},
        {"revision": 1},
        {"version": 1},
        {"realm_id": "elsewhere"},
        {"active_version": 1},
        {"expected_revision": 1},
        {"": 1},
    ],
    ids=lambda extra: next(iter(extra)) or "empty-name",
)
async def test_create_refuses_unknown_fields(
    api: Api, root: dict[str, Any], extra: dict[str, Any]
) -> None:
    problem = await assert_refused(
        api, send(api, "POST", body=valid_create(**extra)), 400, "invalid-request"
    )
    assert problem["detail"]


@pytest.mark.parametrize(
    "fields",
    [
        {"title": 5},
        {"title": None},
        {"title": [MARKER]},
        {"body": {"text": MARKER}},
        {"body": None},
        {"body": 1.5},
        {"level": 1},
        {"level": None},
        {"status": True},
        {"priority": None},
        {"injection_mode": ["system_first"]},
        {"metadata": "x"},
        {"metadata": ["x"]},
        {"metadata": None},
        {"parent_id": 5},
        {"key": 5},
        {"key": ["root"]},
        {"owner_agent_id": 7},
        {"owner_agent_id": True},
        {"message": 5},
        {"message": {"why": MARKER}},
    ],
    ids=lambda fields: f"{next(iter(fields))}={json.dumps(next(iter(fields.values())))}",
)
async def test_create_refuses_wrong_types(
    api: Api, root: dict[str, Any], fields: dict[str, Any]
) -> None:
    await assert_refused(
        api, send(api, "POST", body=valid_create(**fields)), 400, "invalid-request"
    )


@pytest.mark.parametrize("missing", ["level", "title", "body"])
async def test_create_refuses_a_missing_required_field(
    api: Api, root: dict[str, Any], missing: str
) -> None:
    body = valid_create()
    del body[missing]
    await assert_refused(api, send(api, "POST", body=body), 400, "invalid-request")


@pytest.mark.parametrize(
    "fields",
    [
        {"level": "org"},
        {"level": "REALM"},
        {"level": ""},
        {"status": "done"},
        {"status": "ACTIVE"},
        {"priority": "urgent"},
        {"priority": "Normal"},
        {"injection_mode": "system_last"},
        {"injection_mode": "system-first"},
    ],
    ids=lambda fields: "=".join(next(iter(fields.items()))),
)
async def test_create_refuses_bad_enum_values(
    api: Api, root: dict[str, Any], fields: dict[str, Any]
) -> None:
    await assert_refused(
        api, send(api, "POST", body=valid_create(**fields)), 400, "invalid-request"
    )


@pytest.mark.parametrize("status", ["completed", "cancelled"])
async def test_create_refuses_a_terminal_status(
    api: Api, root: dict[str, Any], status: str
) -> None:
    body = valid_create(status=status)
    await assert_refused(api, send(api, "POST", body=body), 400, "invalid-request")


BAD_DIRECTIVE_IDS = [
    pytest.param("nope", id="word"),
    pytest.param("", id="empty"),
    pytest.param("dir_", id="prefix-only"),
    pytest.param("dir_" + "u" * 26, id="not-crockford"),
    pytest.param("dir_" + "0" * 25, id="too-short"),
    pytest.param("dir_" + "0" * 27, id="too-long"),
    pytest.param("DIR_" + "0" * 26, id="upper-prefix"),
    pytest.param("dir_" + "A" * 26, id="upper-suffix"),
    pytest.param("dir_" + "0" * 26 + "\n", id="trailing-newline"),
    pytest.param(" dir_" + "0" * 26, id="leading-space"),
    pytest.param("dir_" + "0" * 25 + "\x00", id="nul"),
]


@pytest.mark.parametrize("parent_id", BAD_DIRECTIVE_IDS)
async def test_create_refuses_a_malformed_parent_id(
    api: Api, root: dict[str, Any], parent_id: str
) -> None:
    body = valid_create(level="team", parent_id=parent_id)
    await assert_refused(api, send(api, "POST", body=body), 400, "invalid-request")


@pytest.mark.parametrize(
    "fields",
    [
        {"title": f"{MARKER}\x00"},
        {"body": f"{MARKER}\x00 body"},
        {"message": f"{MARKER}\x00"},
        {"metadata": {"a\x00b": 1}},
        {"metadata": {"note": f"{MARKER}\x00"}},
        {"metadata": {"nested": {"deeper": [1, "x\x00"]}}},
        {"metadata": {"nested": {"k\x00": True}}},
        {"key": "ro\x00ot"},
        {"owner_agent_id": "le\x00ad"},
    ],
    ids=["title", "body", "message", "metadata-key", "metadata-value", "nested-value",
         "nested-key", "key", "owner"],
)  # fmt: skip
async def test_create_refuses_nul_characters(
    api: Api, root: dict[str, Any], fields: dict[str, Any]
) -> None:
    await assert_refused(
        api, send(api, "POST", body=valid_create(**fields)), 400, "invalid-request"
    )


BAD_TITLES = [
    pytest.param("", id="empty"),
    pytest.param("   ", id="spaces"),
    pytest.param("\t \t", id="tabs"),
    pytest.param(f"{MARKER}\nsecond line", id="newline"),
    pytest.param(f"{MARKER}\r\nsecond line", id="crlf"),
    pytest.param(f"{MARKER}\rsecond line", id="carriage-return"),
    pytest.param(f"{MARKER}\n", id="trailing-newline"),
    pytest.param(MARKER + "x" * (257 - len(MARKER)), id="257-chars"),
    pytest.param(MARKER + "é" * (257 - len(MARKER)), id="257-multibyte-chars"),
]


@pytest.mark.parametrize("title", BAD_TITLES)
async def test_create_refuses_bad_titles(api: Api, root: dict[str, Any], title: str) -> None:
    body = valid_create(title=title)
    await assert_refused(api, send(api, "POST", body=body), 400, "invalid-request")


async def test_create_refuses_an_empty_body(api: Api, root: dict[str, Any]) -> None:
    await assert_refused(api, send(api, "POST", body=valid_create(body="")), 400, "invalid-request")


@pytest.mark.parametrize("text", OVERSIZED_BODIES)
async def test_create_counts_the_body_limit_in_utf8_bytes(
    api: Api, root: dict[str, Any], text: str
) -> None:
    assert len(text) <= MAX_BODY_BYTES or text.isascii()  # under the limit in characters
    problem = await assert_refused(
        api, send(api, "POST", body=valid_create(body=text)), 400, "content-too-large"
    )
    assert "32768" in problem["detail"] or "32 768" in problem["detail"]


@pytest.mark.parametrize("char", ["x", "é", "€", "😀"])
async def test_create_accepts_a_body_of_exactly_the_limit(api: Api, char: str) -> None:
    text = sized_body(char, MAX_BODY_BYTES)
    created = await api.create(body=text)
    assert (await api.get(created["id"]))["body"] == text


async def test_create_accepts_a_title_of_256_multibyte_characters(api: Api) -> None:
    title = "é" * 256
    created = await api.create(title=title)
    assert (await api.get(created["id"]))["title"] == title


@pytest.mark.parametrize(
    "metadata",
    [
        {"charter.owner": "x"},
        {"charter.": 1},
        {"ok": 1, "charter.internal": {"a": 1}},
    ],
    ids=["charter.owner", "charter.", "among-others"],
)
async def test_create_refuses_reserved_metadata_keys(
    api: Api, root: dict[str, Any], metadata: dict[str, Any]
) -> None:
    body = valid_create(metadata=metadata)
    await assert_refused(api, send(api, "POST", body=body), 400, "invalid-request")


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param(metadata_of(8 * 1024 + 1), id="8KiB+1"),
        pytest.param({f"k{i}": i for i in range(1500)}, id="many-keys"),
        pytest.param({"a": "é" * 4100}, id="multibyte"),
    ],
)
async def test_create_refuses_metadata_over_8_kib(
    api: Api, root: dict[str, Any], metadata: dict[str, Any]
) -> None:
    body = valid_create(metadata=metadata)
    await assert_refused(api, send(api, "POST", body=body), 400, "invalid-request")


async def test_create_accepts_metadata_of_exactly_8_kib(api: Api) -> None:
    metadata = metadata_of(8 * 1024)
    created = await api.create(metadata=metadata)
    assert created["metadata"] == metadata


BAD_KEYS = [
    pytest.param("", id="empty"),
    pytest.param("Root", id="upper-case"),
    pytest.param("-root", id="leading-dash"),
    pytest.param(".root", id="leading-dot"),
    pytest.param("a b", id="space"),
    pytest.param("a" * 129, id="129-chars"),
    pytest.param("clé", id="non-ascii"),
    pytest.param("root\n", id="trailing-newline"),
    pytest.param("a:b", id="colon"),
]

BAD_AGENT_IDS = [
    pytest.param("", id="empty"),
    pytest.param("a b", id="space"),
    pytest.param("a/b", id="slash"),
    pytest.param("a" * 129, id="129-chars"),
    pytest.param("agënt", id="non-ascii"),
    pytest.param("lead\n", id="trailing-newline"),
    pytest.param("lead\t", id="tab"),
]


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_create_refuses_keys_off_the_pattern(
    api: Api, root: dict[str, Any], key: str
) -> None:
    await assert_refused(api, send(api, "POST", body=valid_create(key=key)), 400, "invalid-request")


@pytest.mark.parametrize("owner", BAD_AGENT_IDS)
async def test_create_refuses_owner_agent_ids_off_the_pattern(
    api: Api, root: dict[str, Any], owner: str
) -> None:
    body = valid_create(owner_agent_id=owner)
    await assert_refused(api, send(api, "POST", body=body), 400, "invalid-request")


async def test_create_accepts_keys_and_owners_at_the_edge_of_their_patterns(api: Api) -> None:
    key = "k" + "0._/-" * 25 + "ab"
    owner = "A.z_9:@-" * 16
    assert len(key) == 128
    assert len(owner) == 128
    created = await api.create(key=key, owner_agent_id=owner)
    assert (created["key"], created["owner_agent_id"]) == (key, owner)


async def test_create_refuses_a_message_over_4096_characters(
    api: Api, root: dict[str, Any]
) -> None:
    body = valid_create(message=MARKER + "m" * 4096)
    await assert_refused(api, send(api, "POST", body=body), 400, "invalid-request")


async def test_create_refuses_a_key_already_used(api: Api, root: dict[str, Any]) -> None:
    body = valid_create(key="root")
    await assert_refused(api, send(api, "POST", body=body), 409, "already-exists")


# --- hierarchy: well-formed input the tree refuses ------------------------------------------


async def test_create_refuses_a_parent_that_does_not_exist(api: Api, root: dict[str, Any]) -> None:
    body = valid_create(level="team", parent_id="dir_" + "0" * 26)
    await assert_refused(api, send(api, "POST", body=body), 422, "invalid-hierarchy")


async def test_create_refuses_a_parent_in_another_realm(
    api: Api, root: dict[str, Any], foreign: dict[str, Any]
) -> None:
    body = valid_create(level="team", parent_id=foreign["id"])
    await assert_refused(api, send(api, "POST", body=body), 422, "invalid-hierarchy")


@pytest.mark.parametrize(
    ("level", "parent"),
    [("team", None), ("agent", None), ("realm", "root"), ("realm", "team"), ("team", "agent")],
)
async def test_create_refuses_levels_the_hierarchy_forbids(
    api: Api, tree: dict[str, dict[str, Any]], level: str, parent: str | None
) -> None:
    parent_id = tree[parent]["id"] if parent else None
    body = valid_create(level=level, parent_id=parent_id)
    await assert_refused(api, send(api, "POST", body=body), 422, "invalid-hierarchy")


async def test_create_refuses_a_node_deeper_than_16(api: Api) -> None:
    node = await api.create()
    for _ in range(15):
        node = await api.child(node, level="agent")
    body = valid_create(level="agent", parent_id=node["id"])
    await assert_refused(api, send(api, "POST", body=body), 422, "invalid-hierarchy")


# --- request size ------------------------------------------------------------------------------


def _oversized_request(size: int) -> bytes:
    """Valid JSON of exactly `size` bytes, most of it a body string full of the marker."""
    head = b'{"level": "realm", "title": "t", "body": "'
    tail = b'"}'
    filler = (MARKER.encode() * (size // len(MARKER) + 1))[: size - len(head) - len(tail)]
    raw = head + filler + tail
    assert len(raw) == size
    return raw


@pytest.mark.parametrize("write", ["create", "patch", "rollback", "delete", "realm"])
async def test_a_request_body_over_256_kib_is_413(
    api: Api, root: dict[str, Any], write: str
) -> None:
    raw = _oversized_request(MAX_REQUEST_BYTES + 1)
    writes: dict[str, Callable[[], Awaitable[Response]]] = {
        "create": lambda: send(api, "POST", "", raw),
        "patch": lambda: send(api, "PATCH", f"/{root['id']}", raw, if_match(root)),
        "rollback": lambda: send(api, "POST", f"/{root['id']}/rollback", raw, if_match(root)),
        "delete": lambda: send(api, "DELETE", f"/{root['id']}", raw, if_match(root)),
        "realm": lambda: api.client.post("/v1/realms", content=raw, headers=JSON),
    }
    await assert_refused(api, writes[write](), 413, "payload-too-large")


async def test_a_request_body_of_exactly_256_kib_is_read_and_judged_on_its_content(
    api: Api, root: dict[str, Any]
) -> None:
    raw = _oversized_request(MAX_REQUEST_BYTES)
    await assert_refused(api, send(api, "POST", "", raw), 400, "content-too-large")


def _post_without_length(api: Api, body: bytes, announced: str | None) -> Awaitable[Response]:
    """POST with the Content-Length header dropped or replaced: the server must count bytes."""
    request = api.client.build_request("POST", api.base, content=body, headers=JSON)
    del request.headers["Content-Length"]
    if announced is not None:
        request.headers["Content-Length"] = announced
    return api.client.send(request)


@pytest.mark.parametrize("announced", [None, "100"], ids=["no-length", "understated-length"])
async def test_the_request_limit_counts_the_bytes_actually_sent(
    api: Api, root: dict[str, Any], announced: str | None
) -> None:
    raw = _oversized_request(MAX_REQUEST_BYTES + 1)
    request = _post_without_length(api, raw, announced)
    await assert_refused(api, request, 413, "payload-too-large")


async def test_a_body_without_content_length_under_the_limit_is_read_whole(api: Api) -> None:
    body = valid_create(body=sized_body("é", MAX_BODY_BYTES))
    response = await _post_without_length(api, json.dumps(body).encode(), None)
    assert response.status_code == 201, response.text
    assert response.json()["body"] == body["body"]
