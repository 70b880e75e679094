"""One vocabulary: the client's and the CLI's words are exactly the server's.

The client cannot import the server (it is installed without it), so it keeps its own list
of each word in `charter.client.vocabulary`. These tests fail when a server value is missing
from that list, or the list holds a word the server does not know, so a new status, level,
priority, injection mode or role cannot be forgotten on the client side.
"""

from __future__ import annotations

import enum

import pytest

from charter.api import events as feed
from charter.cli import commands
from charter.client import models
from charter.client import vocabulary as client
from charter.domain import tree
from charter.domain.access import Role
from charter.domain.events import EventType
from charter.domain.injection import InjectFormat
from charter.domain.tree import InjectionMode, Level, Priority, Status
from charter.domain.work import ClaimState, Outcome, ScheduleState

PAIRS: list[tuple[type[enum.StrEnum], tuple[str, ...]]] = [
    (Level, client.LEVELS),
    (Status, client.STATUSES),
    (Priority, client.PRIORITIES),
    (InjectionMode, client.INJECTION_MODES),
    (Role, client.ROLES),
    (InjectFormat, client.INJECT_FORMATS),
    (ClaimState, client.CLAIM_STATES),
    (Outcome, client.OUTCOMES),
    (ScheduleState, client.SCHEDULE_STATES),
]


@pytest.mark.parametrize(("server", "words"), PAIRS, ids=[kind.__name__ for kind, _ in PAIRS])
def test_the_client_knows_every_server_word_and_no_other(
    server: type[enum.StrEnum], words: tuple[str, ...]
) -> None:
    assert sorted(words) == sorted(member.value for member in server)


def test_terminal_and_open_statuses_partition_the_statuses() -> None:
    assert frozenset(Status) == tree.TERMINAL | tree.OPEN
    assert not tree.TERMINAL & tree.OPEN
    assert {s.value for s in tree.TERMINAL} == client.TERMINAL
    assert all(s.terminal != s.open for s in Status)


def test_the_client_knows_the_hierarchy_rules() -> None:
    for level in Level:
        allowed = {p.value for p in Level if _may_hold(p, level)}
        assert client.ALLOWED_PARENTS[level.value] == allowed


def _may_hold(parent: Level, level: Level) -> bool:
    try:
        tree.check_parent_level(level, parent)
    except Exception:
        return False
    return True


def test_the_client_models_and_cli_take_their_words_from_the_one_list() -> None:
    assert models.Status is client.Status
    assert models.TERMINAL is client.TERMINAL
    # Read from the module's namespace: the CLI imports them, it does not re-export them.
    assert vars(commands)["STATUSES"] is client.STATUSES
    assert vars(commands)["LEVELS"] is client.LEVELS


def test_the_feed_filter_knows_every_event_type() -> None:
    assert {t.value for t in EventType} == feed.EVENT_TYPES
