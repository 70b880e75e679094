"""A statement hook proving that no query touches two realms (ADR 0014).

Listens on an engine's `before_cursor_execute` and, per DBAPI connection, follows the
transaction's realm setting (`set_config('charter.realm', …)`, the first statement of every
realm transaction). Each statement is then judged:

- its parameters may name only the transaction's realm (for a statement outside a realm
  transaction, e.g. a one-statement read through a server function: at most one realm);
- its parameters may name no row id known to belong to another realm;
- its text, where it names a realm-scoped table (one with a `realm_id` column), filters or
  writes `realm_id`.

Server functions (migrations 0004-0007) are called with the realm as a parameter: what their
bodies do is checked by reading them, as ADR 0014 records.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from charter.db.tables import metadata

REALM_SCOPED = tuple(t.name for t in metadata.sorted_tables if "realm_id" in t.c)
_NAMES = re.compile(
    r"\b(?:FROM|JOIN|INTO|UPDATE)\s+\"?(" + "|".join(REALM_SCOPED) + r")\"?\b", re.IGNORECASE
)
_SETTING = "set_config"
# The two due-work scans that look across realms on purpose, and only at ids and times: the
# earliest timer (ADR 0008) and the webhooks with events to deliver (ADR 0010). Each finds
# realms with work, whose work then runs in a transaction of that realm alone. On Citus they
# become one query per shard (ADR 0014); every other statement must name its realm.
COORDINATION = ("timers", "webhook_cursors")


def _flat(values: Any) -> Iterable[Any]:
    if isinstance(values, dict):
        values = values.values()
    if isinstance(values, (list, tuple, set)):
        for value in values:
            yield from _flat(value)
    else:
        yield values


@dataclass
class RealmStatements:
    """Realm ids and the row ids of each; what was seen, and what broke the rule."""

    owners: dict[str, str] = field(default_factory=dict)  # row id (or realm id) -> realm
    realms: set[str] = field(default_factory=set)
    checked: int = 0
    by_realm: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    _current: dict[int, str] = field(default_factory=dict)

    def realm(self, realm_id: str) -> None:
        self.realms.add(realm_id)
        self.owners[realm_id] = realm_id

    def owned(self, realm_id: str, row_id: str) -> None:
        self.owners[row_id] = realm_id

    def attach(self, engine: Engine) -> None:
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "begin", self._begin)

    def detach(self, engine: Engine) -> None:
        event.remove(engine, "before_cursor_execute", self._before)
        event.remove(engine, "begin", self._begin)

    def _begin(self, conn: Any) -> None:
        self._current.pop(id(conn.connection.dbapi_connection), None)

    def _before(
        self, conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool
    ) -> None:
        key = id(conn.connection.dbapi_connection)
        values = [v for v in _flat(parameters) if isinstance(v, str)]
        if _SETTING in statement and "charter.realm" in values:
            self._current[key] = next((v for v in values if v != "charter.realm"), "")
            return
        named = {self.owners[v] for v in values if v in self.owners}
        realm = self._current.get(key) or ""
        shown = " ".join(statement.split())[:160]
        if realm and named - {realm}:
            self.violations.append(f"in realm {realm}, names {sorted(named - {realm})}: {shown}")
        elif not realm and len(named) > 1:
            self.violations.append(f"outside a realm, names {sorted(named)}: {shown}")
        tables = set(_NAMES.findall(statement)) - set(COORDINATION)
        if tables and "realm_id" not in statement:
            self.violations.append(f"{sorted(tables)} without realm_id: {shown}")
        if realm or named:
            self.checked += 1
            for r in {realm} | named if realm else named:
                self.by_realm[r] = self.by_realm.get(r, 0) + 1
