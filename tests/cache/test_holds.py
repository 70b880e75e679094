"""Holds under a console session's id as well as a key's: ended by either name (each with
its own ending), counted once, and gone from both names when the stream ends."""

from __future__ import annotations

import pytest

from charter.cache.holds import Holds
from charter.cache.watch import Ending
from charter.errors import RateLimited


def test_a_hold_under_a_session_ends_by_either_name() -> None:
    holds = Holds(cap=2)
    with (
        holds.hold("key_a", session="ses_1") as first,
        holds.hold("key_a", session="ses_2") as second,
    ):
        assert len(holds) == 2
        assert sorted(holds.key_ids()) == ["key_a", "ses_1", "ses_2"]
        assert holds.revoke("ses_1") == 1
        assert first.ended is Ending.SESSION_ENDED  # its stream says why: the session ended
        assert second.ended is None
        with pytest.raises(RateLimited), holds.hold("key_a", session="ses_3"):
            pass  # the cap counts the key's holds, whatever their second name
        assert "ses_3" not in holds.key_ids()
        assert holds.revoke("key_a") == 2
        assert second.ended is Ending.REVOKED
    assert len(holds) == 0
    assert holds.key_ids() == []


def test_a_hold_without_a_second_name_is_as_before() -> None:
    holds = Holds()
    with holds.hold("key_b") as watch:
        assert holds.key_ids() == ["key_b"]
        assert holds.revoke("ses_unknown") == 0
        assert watch.ended is None
    assert holds.key_ids() == []
