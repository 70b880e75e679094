"""One log record, one line: control and format characters in logged values are escaped."""

from __future__ import annotations

import logging

import pytest

from charter.logs import escaped, install


@pytest.mark.parametrize(
    ("raw", "written"),
    [
        ("plain path /v1/realms/a", "plain path /v1/realms/a"),
        ("a\n[ERROR] forged", "a\\x0a[ERROR] forged"),
        ("nul\x00cr\rtab\tesc\x1b[31m", "nul\\x00cr\\x0dtab\\x09esc\\x1b[31m"),
        ("line\u2028para\u2029nel\x85", "line\\u2028para\\u2029nel\\x85"),
        ("bidi\u202eoverride", "bidi\\u202eoverride"),
        ("tag\U000e0041", "tag\\U000e0041"),
        ("é and 😀 stay", "é and 😀 stay"),
    ],
)
def test_escaped(raw: str, written: str) -> None:
    assert escaped(raw) == written
    assert "\n" not in escaped(raw)


def test_every_logger_writes_escaped_messages(caplog: pytest.LogCaptureFixture) -> None:
    install()
    install()  # idempotent: one factory, not two
    with caplog.at_level(logging.INFO):
        logging.getLogger("charter.api").warning("bad %s on %s", "X", "/a\n[ERROR] forged")
        logging.getLogger("granian.access").info("%(path)s done", {"path": "/b\x00\r\n"})
    assert [r.getMessage() for r in caplog.records] == [
        "bad X on /a\\x0a[ERROR] forged",
        "/b\\x00\\x0d\\x0a done",
    ]
    assert len(caplog.text.splitlines()) == 2  # two records, two lines
