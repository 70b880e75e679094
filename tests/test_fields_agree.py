"""One directive, the same fields at every layer: a field added in one place and forgotten in
another fails here, by name, before any route shows the gap.

The column list is the table's (db/tables.py); the record's, the wire's and the client's
are compared with it. Inputs: every writable field of `NewDirective` and `Patch` is on the
wire types the API reads (`api.directives._fill` takes them by name) and on the client's.
"""

from __future__ import annotations

from dataclasses import fields

import msgspec

from charter.api import wire
from charter.client import models as client
from charter.db.tables import directives as table
from charter.services.writes import NewDirective, Patch
from charter.store.directives import Directive

TEXT = {"title", "body"}


def _struct(kind: type[msgspec.Struct]) -> set[str]:
    return set(kind.__struct_fields__)


def test_the_record_holds_every_column() -> None:
    assert {c.name for c in table.c} == {f.name for f in fields(Directive)} - TEXT


def test_the_wire_and_the_client_show_every_field_of_the_record() -> None:
    record = {f.name for f in fields(Directive)}
    assert _struct(wire.DirectiveOut) - {"changed"} == record
    assert _struct(client.Directive) - {"changed"} == record
    # A list item is every field but the body, and no realm id (the path names it).
    assert _struct(wire.DirectiveSummary) == record - {"body", "realm_id"}
    assert _struct(client.DirectiveSummary) == _struct(wire.DirectiveSummary)


def test_every_input_field_is_on_the_wire_and_in_the_client() -> None:
    assert {f.name for f in fields(NewDirective)} == _struct(wire.DirectiveCreate)
    assert _struct(client.NewDirective) == _struct(wire.DirectiveCreate)
    assert {f.name for f in fields(Patch)} == _struct(wire.DirectivePatch) - {"expected_revision"}
    assert _struct(client.Patch) == {f.name for f in fields(Patch)}
