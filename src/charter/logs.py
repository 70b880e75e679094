"""One log record, one line: control characters in logged values are escaped.

A request path is attacker-chosen text, and it is logged (by Charter on errors, by granian in
its access log). Decoded, `%0A[ERROR] forged` would start a forged line of its own, and NUL
bytes would go out as they are. `install()` puts a record factory in front of every logger of
the process, so every message, whoever logs it, is formatted once and escaped: each character
that is not printable (control and format characters, line and paragraph separators) becomes
`\\xNN`, `\\uNNNN` or `\\UNNNNNNNN`. Tracebacks are not messages and keep their lines.

It also drops the records of libraries that log what they send: sse-starlette logs every SSE
chunk at DEBUG, and over MCP a chunk is a tool's or a prompt's answer, directive text.
"""

from __future__ import annotations

import logging
from typing import Any

_installed = False
# Logger name -> the message prefix of the records it must never emit, whatever its level.
_CONTENT_RECORDS = {"sse_starlette.sse": ("chunk:", "ping:")}


def _drop_content(record: logging.LogRecord) -> bool:
    prefixes = _CONTENT_RECORDS.get(record.name, ())
    return not (isinstance(record.msg, str) and record.msg.startswith(prefixes))


def escaped(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(char: str) -> str:
    point = ord(char)
    if point < 0x100:
        return f"\\x{point:02x}"
    return f"\\u{point:04x}" if point < 0x10000 else f"\\U{point:08x}"


def install() -> None:
    """Escape every log message of this process from now on (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    make = logging.getLogRecordFactory()

    def record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        made = make(*args, **kwargs)
        try:
            message = made.getMessage()
        except Exception:  # a bad format string: logging reports that itself, later
            return made
        if not message.isprintable():
            made.msg, made.args = escaped(message), None
        return made

    logging.setLogRecordFactory(record)
    for name in _CONTENT_RECORDS:
        logging.getLogger(name).addFilter(_drop_content)
