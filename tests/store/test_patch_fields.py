"""No write path drops a PATCH field: the fields each path handles are derived from `Patch`.

PostgreSQL's one-call text swap (ADR 0004) handles only the title, the body and the change
message. It used to list the fields it skipped, so a new `Patch` field set together with a
text change was silently dropped on PostgreSQL, and the SQLite run could not tell. Here a
copy of `Patch` with an extra field proves, on both backends, that such a field reaches the
row (or is refused loudly), never vanishes.
"""

from __future__ import annotations

from dataclasses import field, fields, make_dataclass
from typing import Any

import pytest
from msgspec import UNSET, UnsetType

from charter.clock import utcnow
from charter.db.session import Database
from charter.domain.tree import InjectionMode, Level, Priority, Status
from charter.services import writes
from charter.services.writes import Actor, Expected, NewDirective, Patch
from charter.store import directives, realms
from tests.support.api import new_realm_id

ACTOR = Actor(key_id="fields")


def _wider(name: str) -> type[Any]:
    """`Patch` with one more field, as the next feature would add it."""
    extra = (name, str | UnsetType, field(default=UNSET))
    return make_dataclass("WiderPatch", [extra], bases=(Patch,), frozen=True, slots=True)


_VALUES: dict[str, Any] = {
    "status": Status.PAUSED,
    "priority": Priority.HIGH,
    "owner_agent_id": "someone",
    "parent_id": None,
    "injection_mode": InjectionMode.USER_PREPEND,
    "metadata": {"a": 1},
    "key": "k",
    "reopen": True,
    "cascade": True,
}


_NOT_TEXT = sorted(f.name for f in fields(Patch) if f.name not in {"title", "body", "message"})


@pytest.mark.parametrize("name", _NOT_TEXT)
def test_any_field_but_the_text_takes_the_general_path(name: str) -> None:
    """Every Patch field, this list included: a new one is tried with a plain string."""
    assert writes._text_only(Patch(title="t"))
    assert not writes._text_only(Patch(title="t", **{name: _VALUES.get(name, "x")}))


def test_a_new_field_takes_the_general_path() -> None:
    wider = _wider("due_by")
    assert writes._text_only(wider(title="t"))
    assert not writes._text_only(wider(title="t", due_by="2027-01-01"))


async def _node(db: Database) -> tuple[str, directives.Directive]:
    realm_id = new_realm_id()
    async with db.transaction(realm_id) as conn:
        await realms.create(conn, realm_id, "fields", utcnow())
        node = await writes.create(conn, realm_id, ACTOR, NewDirective(Level.REALM, "t", "b"), 16)
    return realm_id, node


async def test_a_new_field_with_a_column_reaches_the_row(db: Database) -> None:
    """`level` stands in for a new column that `Patch` gains: set with a text change, it is
    written on both backends (on PostgreSQL the text swap would have dropped it)."""
    realm_id, node = await _node(db)
    patch = _wider("level")(title="new title", level=Level.TEAM.value)
    expected = Expected(node.revision, via_header=False)
    async with db.transaction(realm_id) as conn:
        outcome = await writes.update(conn, realm_id, ACTOR, node.id, expected, patch, 16)
    assert outcome.changed
    async with db.transaction(realm_id) as conn:
        stored = await directives.get(conn, realm_id, node.id)
    assert (stored.title, stored.level) == ("new title", Level.TEAM)


async def test_a_new_field_without_a_column_is_refused_not_dropped(db: Database) -> None:
    realm_id, node = await _node(db)
    patch = _wider("due_by")(title="new title", due_by="2027-01-01")
    expected = Expected(node.revision, via_header=False)
    with pytest.raises(AttributeError, match="due_by"):
        async with db.transaction(realm_id) as conn:
            await writes.update(conn, realm_id, ACTOR, node.id, expected, patch, 16)
    async with db.transaction(realm_id) as conn:
        stored = await directives.get(conn, realm_id, node.id)
    assert (stored.title, stored.revision) == ("t", node.revision)
