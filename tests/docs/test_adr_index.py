"""docs/decisions/README.md lists every decision record, under the title the record gives."""

from __future__ import annotations

import re
from pathlib import Path

DECISIONS = Path(__file__).resolve().parents[2] / "docs" / "decisions"


def test_the_index_names_every_record_by_its_title() -> None:
    index = (DECISIONS / "README.md").read_text(encoding="utf-8")
    listed = dict(re.findall(r"^- \[\d{4}\]\(([^)]+)\): (.+)$", index, flags=re.MULTILINE))
    records = sorted(DECISIONS.glob("[0-9][0-9][0-9][0-9]-*.md"))
    assert records, "no decision records found"
    assert sorted(listed) == [r.name for r in records]
    for record in records:
        heading = record.read_text(encoding="utf-8").splitlines()[0]
        title = re.sub(r"^# (ADR )?\d{4} — ", "", heading)
        assert listed[record.name] == title, record.name
