"""Log lines: text (the default) or JSON lines, each carrying the request id it belongs to.

`CHARTER_LOG_FORMAT=json` makes every line one JSON object: `time`, `level`, `logger`,
`message`, `request_id` (inside a request), the access line's fields, and for an exception
its type only — never its message or traceback, which may quote directive text (a test drives
every endpoint with marked text and reads every record in both formats).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final

REQUEST_ID: ContextVar[str | None] = ContextVar("charter_request_id", default=None)
REQUEST_ID_HEADER: Final = b"x-request-id"
# An incoming id is kept if it is this sane: short, and nothing a log or a header could trip on.
_SANE_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")

FORMATS: Final = ("text", "json")
ACCESS_LOGGER: Final = "charter.access"


class _Ids:
    """16 hex digits: 8 random per process, then a counter. Unique across processes (with
    overwhelming odds) and cheaper than reading the random source for every request."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._prefix = os.urandom(4).hex()
        # Counted from 2**32 up, so `hex` always gives "0x1" (or "0x2"…) and then eight digits:
        # cheaper than a format spec, and the same ids as masking the count to 32 bits.
        self._next = itertools.count(1 << 32 | int.from_bytes(os.urandom(4)))

    def make(self) -> str:
        return self._prefix + hex(next(self._next))[3:]


_ids = _Ids()
os.register_at_fork(after_in_child=_ids.reset)  # a forked worker gets a prefix of its own


def request_id(incoming: bytes | None) -> str:
    """The caller's id when it is sane, else a new one (16 hex digits)."""
    if incoming is not None and _SANE_ID.fullmatch(incoming):
        return incoming.decode("ascii")
    return _ids.make()


class RequestIdFilter(logging.Filter):
    """Stamps the record with the request id of the moment it was logged (a handler may
    format it later, outside the request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (json escapes every control character)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or REQUEST_ID.get()
        if rid is not None:
            line["request_id"] = rid
        fields = getattr(record, "charter", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            line["exception"] = record.exc_info[0].__name__
        return json.dumps(line, ensure_ascii=False, default=str)


def dict_config(log_format: str, *, access_log: bool) -> dict[str, Any] | None:
    """A logging dictConfig for the ASGI server and the app (None: the server's default).

    In JSON mode every logger writes JSON lines, the server's own too; the access line is the
    app's (it knows the route template and the request id), not the server's."""
    if log_format != "json":
        return None
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "json",
        "filters": ["request_id"],
        "stream": "ext://sys.stdout",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "filters": {"request_id": {"()": f"{__name__}.RequestIdFilter"}},
        "handlers": {"json": handler},
        "loggers": {
            "_granian": {"handlers": ["json"], "level": "INFO", "propagate": False},
            "granian.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
            ACCESS_LOGGER: {
                "handlers": [],
                "level": "INFO" if access_log else "WARNING",
                "propagate": True,
            },
        },
        "root": {"handlers": ["json"], "level": "WARNING"},
    }
