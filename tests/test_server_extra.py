"""`charter serve` where the server side is not installed says how to install it."""

from __future__ import annotations

import sys

import pytest

from charter.__main__ import SERVER_EXTRA_HINT, main


@pytest.mark.parametrize("argv", [["serve"], ["migrate"], ["keys", "create", "--role", "admin"]])
def test_a_server_command_without_the_server_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    monkeypatch.setitem(sys.modules, "charter.server_cli", None)  # as if not installed
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert SERVER_EXTRA_HINT in str(exited.value.code)
