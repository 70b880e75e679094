"""json_depth: the nesting of a decoded JSON value, found without recursion."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from charter.domain.metadata import MAX_JSON_DEPTH, check_json_depth, json_depth
from charter.errors import InvalidRequest

SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=40,
)


def _depth(value: Any) -> int:
    """The definition, recursively: fine for the small values hypothesis draws."""
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@given(JSON)
def test_json_depth_is_the_nesting(value: Any) -> None:
    assert json_depth(value) == _depth(value)


def _nested(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 == 0 else {"a": value}
    return value


def test_far_deeper_than_the_stack_allows_is_measured() -> None:
    assert json_depth(_nested(100_000)) == 100_000


def test_the_limit_is_inclusive() -> None:
    check_json_depth(_nested(MAX_JSON_DEPTH), "metadata")
    with pytest.raises(InvalidRequest, match="deeper than 32"):
        check_json_depth(_nested(MAX_JSON_DEPTH + 1), "metadata")
