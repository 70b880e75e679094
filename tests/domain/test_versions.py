"""Properties of versioned content: validation, hashing, no-op detection, diffs."""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from charter.domain.versions import (
    MAX_BODY_BYTES,
    MAX_TITLE_CHARS,
    Content,
    content_hash,
    is_noop,
    unified_diff,
    validate_body,
    validate_title,
)
from charter.errors import ContentTooLarge, InvalidRequest

contents = st.builds(Content, st.text(max_size=20), st.text(max_size=40))
# Characters of every UTF-8 width: 1, 2, 3 and 4 bytes.
WIDE_CHARS = ["a", "é", "€", "😀"]


@given(st.text(), st.text())
def test_content_hash_is_stable_and_well_formed(title: str, body: str) -> None:
    first = content_hash(title, body)
    assert first == content_hash(title, body)
    assert first == Content(title, body).hash
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", first)


def test_content_hash_pins_the_canonical_form() -> None:
    # Stored hashes must stay valid: sorted keys, no spaces, UTF-8 without escapes.
    canonical = '{"body":"Ünïcode \\"body\\"","title":"Ship"}'
    expected = "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    assert content_hash("Ship", 'Ünïcode "body"') == expected


@given(contents, contents)
def test_distinct_content_has_distinct_hashes(a: Content, b: Content) -> None:
    assert (a.hash == b.hash) is (a == b)


@given(st.text(max_size=10), st.text(min_size=1, max_size=10), st.text(max_size=10))
def test_moving_text_between_title_and_body_changes_the_hash(x: str, y: str, z: str) -> None:
    # ("ab", "c") and ("a", "bc") share a concatenation but are different content.
    assert content_hash(x + y, z) != content_hash(x, y + z)


@given(contents)
def test_nothing_is_a_noop_against_no_active_content(proposed: Content) -> None:
    assert not is_noop(None, proposed)


@given(contents, contents)
def test_is_noop_exactly_when_content_is_equal(current: Content, proposed: Content) -> None:
    assert is_noop(current, proposed) is (current == proposed)
    assert is_noop(current, Content(current.title, current.body))


@given(st.sampled_from(WIDE_CHARS), st.integers(-3, 3))
def test_validate_body_counts_utf8_bytes_not_characters(char: str, delta: int) -> None:
    width = len(char.encode("utf-8"))
    body = char * (MAX_BODY_BYTES // width + delta)
    if len(body.encode("utf-8")) <= MAX_BODY_BYTES:
        validate_body(body)
    else:
        with pytest.raises(ContentTooLarge):
            validate_body(body)


def test_a_body_under_the_limit_in_characters_but_over_it_in_bytes_is_refused() -> None:
    body = "é" * (MAX_BODY_BYTES // 2 + 1)  # 16 385 characters, 32 770 bytes
    assert len(body) < MAX_BODY_BYTES
    with pytest.raises(ContentTooLarge):
        validate_body(body)
    validate_body("a" * MAX_BODY_BYTES)


@pytest.mark.parametrize("body", ["", "   ", "\n\t", "a\x00b"])
def test_validate_body_refuses_blank_and_nul(body: str) -> None:
    with pytest.raises(InvalidRequest):
        validate_body(body)


def test_validate_title_counts_characters() -> None:
    validate_title("é" * MAX_TITLE_CHARS)
    with pytest.raises(InvalidRequest):
        validate_title("a" * (MAX_TITLE_CHARS + 1))


@pytest.mark.parametrize("title", ["", "  ", "two\nlines", "carriage\rreturn", "nul\x00"])
def test_validate_title_refuses_blank_multiline_and_nul(title: str) -> None:
    with pytest.raises(InvalidRequest):
        validate_title(title)


# Line breaks other than "\n" would make the diff's own lines ambiguous to split back up.
_diff_text = st.text(
    st.characters(
        exclude_categories=["Cs"],
        exclude_characters="\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029",
    ),
    max_size=60,
)
diff_contents = st.builds(
    Content,
    _diff_text.filter(lambda t: "\n" not in t),
    st.lists(st.sampled_from(["a", "b", "c", "", "a b", "é"]), max_size=8).map("\n".join)
    | _diff_text,
)


def _rendered(content: Content) -> list[str]:
    """The lines a diff is taken over: the title line, a blank line, the body."""
    body = content.body if content.body.endswith("\n") or not content.body else content.body + "\n"
    return [f"title: {content.title}\n", "\n", *body.splitlines(keepends=True)]


_HUNK = re.compile(r"@@ -(\d+)(?:,(\d+))? \+\d+(?:,\d+)? @@")


def _apply(diff: str, old: list[str]) -> list[str]:
    """Apply a unified diff to `old`, checking every context and removed line as it goes."""
    lines = diff.splitlines(keepends=True)
    assert lines[0].startswith("--- ")
    assert lines[1].startswith("+++ ")
    out: list[str] = []
    at = 0
    for line in lines[2:]:
        hunk = _HUNK.match(line)
        if hunk:
            start, count = int(hunk[1]), int(hunk[2] or 1)
            begin = start if count == 0 else start - 1
            out += old[at:begin]
            at = begin
        elif line[0] == "+":
            out.append(line[1:])
        else:
            assert line[0] in " -"
            assert old[at] == line[1:]
            if line[0] == " ":
                out.append(old[at])
            at += 1
    return out + old[at:]


@given(diff_contents, diff_contents)
def test_unified_diff_applied_to_the_old_version_gives_the_new(old: Content, new: Content) -> None:
    diff = unified_diff(old, new, "v1", "v2")
    if _rendered(old) == _rendered(new):
        assert diff == ""
        return
    assert diff.startswith("--- v1\n+++ v2\n")
    assert _apply(diff, _rendered(old)) == _rendered(new)


@given(diff_contents)
def test_unified_diff_of_a_version_with_itself_is_empty(content: Content) -> None:
    assert unified_diff(content, content, "v1", "v1") == ""
