"""The client's copy of the server's limits (`charter.client.limits`) is the server's.

The client cannot import the server, so it keeps the numbers and patterns itself; these
tests fail when one of them drifts from `charter.domain` or `charter.api.wire`, and when the
client's checks accept what the server refuses (or refuse what it accepts).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from charter.api import wire
from charter.client import limits
from charter.domain import metadata, tree, versions
from charter.errors import CharterError


def test_the_numbers_and_patterns_are_the_servers() -> None:
    assert limits.MAX_TITLE_CHARS == versions.MAX_TITLE_CHARS
    assert limits.MAX_BODY_BYTES == versions.MAX_BODY_BYTES
    assert limits.MAX_METADATA_BYTES == metadata.MAX_METADATA_BYTES
    assert limits.RESERVED_METADATA_PREFIX == metadata.RESERVED_PREFIX
    assert limits.DEFAULT_MAX_DEPTH == tree.DEFAULT_MAX_DEPTH
    assert limits.KEY_PATTERN == wire.KEY_PATTERN
    assert limits.AGENT_ID_PATTERN == wire.AGENT_ID_PATTERN


def _server_refuses(check: Any, value: Any) -> bool:
    try:
        check(value)
    except CharterError:
        return True
    return False


TITLES = ["T", " ", "", "a\nb", "a\rb", "a\x00", "x" * 256, "x" * 257, "é" * 256]
BODIES = ["b", " \n", "a\x00b", "x" * 32_768, "x" * 32_769, "é" * 16_384, "é" * 16_385]
METADATA: list[dict[str, Any]] = [
    {},
    {"team": "a"},
    {"charter.x": 1},
    {"charterx": 1},
    {"k": "a\x00"},
    {"a\x00": 1},
    {"k": [{"deep": "\x00"}]},
    {"k": "x" * (8 * 1024 - 8)},
    {"k": "x" * 8 * 1024},
    {"k": "back\\u0000slash"},
]


@pytest.mark.parametrize("title", TITLES, ids=range(len(TITLES)))
def test_titles_are_refused_exactly_as_the_server_refuses_them(title: str) -> None:
    assert bool(limits.title_problems(title)) == _server_refuses(versions.validate_title, title)


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_bodies_are_refused_exactly_as_the_server_refuses_them(body: str) -> None:
    assert bool(limits.body_problems(body)) == _server_refuses(versions.validate_body, body)


@pytest.mark.parametrize("value", METADATA, ids=range(len(METADATA)))
def test_metadata_is_refused_exactly_as_the_server_refuses_it(value: dict[str, Any]) -> None:
    refused = _server_refuses(metadata.validate_metadata, value)
    assert bool(limits.metadata_problems(value)) == refused


def _wire_accepts(kind: Any, value: str) -> bool:
    try:
        msgspec.convert(value, kind)
    except msgspec.ValidationError:
        return False
    return True


@given(st.text(alphabet="aZz09._/-:@ \n\x00é", max_size=140))
def test_keys_and_agent_ids_are_refused_exactly_as_the_wire_refuses_them(value: str) -> None:
    key_accepted = not limits.key_problems(value)
    assert key_accepted == _wire_accepts(wire.Key, value)
    agent_id_accepted = not limits.agent_id_problems(value)
    assert agent_id_accepted == _wire_accepts(wire.AgentId, value)


def test_a_key_with_a_final_newline_is_refused() -> None:
    assert limits.key_problems("ok\n")
    assert re.match(limits.KEY_PATTERN, "ok")
