"""Template variables from the client and the CLI, against a real server: profiles, realm
defaults, the undefined-variable error, and export/apply carrying the defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from charter.__main__ import main
from charter.cli import exits
from charter.client import Charter, NewDirective, errors
from tests.support.api import ADMIN_KEY
from tests.support.servers import CharterServer


@pytest.fixture
def env(server: CharterServer, realm: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CHARTER_URL", server.url)
    monkeypatch.setenv("CHARTER_KEY", ADMIN_KEY)
    monkeypatch.setenv("CHARTER_REALM", realm)
    monkeypatch.setenv("NO_COLOR", "1")
    return realm


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_client_sets_values_and_gets_the_refusal(charter: Charter, realm: str) -> None:
    assert charter.variables(realm=realm).revision == 0
    charter.set_variables({"tone": "calm"}, expected_revision=0, realm=realm)
    charter.set_profile("w1", {"tone": "brisk"}, expected_revision=0, realm=realm)
    assert charter.profile("w1", realm=realm).variables == {"tone": "brisk"}
    root = charter.create(
        NewDirective(level="realm", title="R", body="Be {{tone}}, {{agent_id}}."), realm=realm
    )
    charter.create(
        NewDirective(level="agent", title="W", body="Own", parent_id=root.id, owner_agent_id="w1"),
        realm=realm,
    )
    assert charter.prompt("w1", realm=realm).text.startswith("# R\n\nBe brisk, w1.")
    with pytest.raises(errors.UndefinedVariable) as refused:
        charter.create(
            NewDirective(
                level="agent", title="X", body="{{nope}}", parent_id=root.id, owner_agent_id="w1"
            ),
            realm=realm,
        )
    assert refused.value.problem.variable == "nope"
    assert refused.value.problem.agents == ["w1"]
    assert refused.value.problem.count == 1
    with pytest.raises(errors.StaleRevision):
        charter.set_profile("w1", {}, expected_revision=0, realm=realm)


def test_the_cli_gets_and_sets_profiles_and_defaults(
    env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "vars", "set", "tone=calm", "lang=English")
    assert code == exits.OK
    assert "revision 1" in out
    code, out, _ = run(capsys, "vars", "set", "--unset", "lang")
    assert code == exits.OK
    code, out, _ = run(capsys, "vars", "get")
    assert "tone = calm" in out
    assert "lang" not in out
    code, out, _ = run(capsys, "profile", "set", "w1", "tone=a=b")
    assert code == exits.OK
    code, out, _ = run(capsys, "profile", "get", "w1", "--json")
    assert '"tone": "a=b"' in out
    code, _, err = run(capsys, "profile", "set", "w1", "novalue")
    assert code == exits.USAGE
    assert "NAME=VALUE" in err


TREE = """\
realm: {realm}
variables:
  tone: calm
directives:
- key: root
  level: realm
  title: Root
  body: Be {{{{tone}}}}.
  children:
  - key: worker
    level: agent
    title: Worker
    owner_agent_id: w1
    body: Work.
"""


def test_export_and_apply_carry_the_defaults(
    env: str, capsys: pytest.CaptureFixture[str], charter: Charter, tmp_path: Path
) -> None:
    path = tmp_path / "tree.yaml"
    path.write_text(TREE.format(realm=env), encoding="utf-8")
    code, out, err = run(capsys, "apply", "-f", str(path))
    assert code == exits.OK, err
    assert "~ variables +tone" in out
    assert charter.prompt("w1", realm=env).text.startswith("# Root\n\nBe calm.")
    code, out, _ = run(capsys, "export")
    assert code == exits.OK
    assert "variables:\n  tone: calm\n" in out
    # Renaming the variable: the new default comes first, the old goes once unused.
    path.write_text(TREE.format(realm=env).replace("tone", "mood"), encoding="utf-8")
    code, out, err = run(capsys, "apply", "-f", str(path))
    assert code == exits.OK, err
    assert charter.variables(realm=env).variables == {"mood": "calm"}
    assert charter.prompt("w1", realm=env).text.startswith("# Root\n\nBe calm.")
