"""CHARTER_LOG_FORMAT=json: one JSON object per line, with the request id of its request."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import os
import re

import pytest

from charter import logs as charter_logs
from charter.observability.logs import REQUEST_ID, dict_config, request_id
from charter.settings import Settings


def test_the_setting_takes_text_or_json_only() -> None:
    assert Settings.from_env({}).log_format == "text"
    assert Settings.from_env({"CHARTER_LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(ValueError, match="CHARTER_LOG_FORMAT must be one of: text, json"):
        Settings.from_env({"CHARTER_LOG_FORMAT": "xml"})
    assert dict_config("text", access_log=True) is None


def test_the_json_config_writes_one_object_per_line() -> None:
    charter_logs.install()  # as every app does (create_app): logged values are escaped
    config = dict_config("json", access_log=True)
    assert config is not None
    stream = io.StringIO()
    config["handlers"]["json"]["stream"] = stream
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    touched = [logging.getLogger(name) for name in config["loggers"]]
    kept = [(logger, logger.handlers[:], logger.level, logger.propagate) for logger in touched]
    try:
        logging.config.dictConfig(config)
        log = logging.getLogger("charter.test")
        token = REQUEST_ID.set("req-1")
        try:
            log.warning('two\nlines and a quote " %s', "arg")
            try:
                raise RuntimeError("a message that may quote directive text")
            except RuntimeError:
                log.exception("failed")
        finally:
            REQUEST_ID.reset(token)
        log.warning("outside a request")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for logger, its_handlers, its_level, propagate in kept:
            logger.handlers[:] = its_handlers
            logger.setLevel(its_level)
            logger.propagate = propagate
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    first, failed, outside = (json.loads(line) for line in lines)
    assert first["message"] == 'two\\x0alines and a quote " arg'
    assert first["request_id"] == "req-1"
    assert first["level"] == "warning"
    assert first["logger"] == "charter.test"
    assert failed["exception"] == "RuntimeError"
    assert "directive text" not in lines[1]  # the type, never the message or traceback
    assert "request_id" not in outside


def test_request_ids_kept_when_sane_and_made_otherwise() -> None:
    assert request_id(b"abc-123_x.y:z") == "abc-123_x.y:z"
    for insane in (None, b"", b"a b", b"x" * 65, b"\xff", b"a\r\nb"):
        made = request_id(insane)
        assert len(made) == 16
        assert int(made, 16) >= 0
    assert request_id(None) != request_id(None)
    ids = [request_id(None) for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{16}", rid) for rid in ids)
    assert len({rid[:8] for rid in ids}) == 1  # this process's prefix, then a count


def test_a_forked_worker_makes_ids_of_its_own() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: one id through the pipe, then out at once
        os.write(write, request_id(None).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    mine = request_id(None)
    assert len(child) == 16
    assert child[:8] != mine[:8]
