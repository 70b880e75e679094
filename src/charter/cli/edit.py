"""`charter edit`: change a directive's text in your editor, as a compare-and-swap update.

The text goes to a private temp file, the editor runs on it, and the result is written against
the revision that was read. If someone else wrote meanwhile, edit shows what they changed and
offers to re-apply the edit on top; whenever the edit is not saved, the file stays.
"""

from __future__ import annotations

import argparse
import difflib
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from charter.cli import _views, exits
from charter.cli._context import Context, InvalidFile, UsageError, resolve
from charter.cli._style import Style
from charter.client import Charter, errors
from charter.client import models as m

MAX_CONFLICTS = 5  # re-applies in a row before edit gives up (and keeps the text)

# Attributes a concurrent change may have touched; the body gets a diff of its own.
_ATTRIBUTES = (
    "title",
    "status",
    "priority",
    "owner_agent_id",
    "injection_mode",
    "metadata",
    "parent_id",
    "key",
    "active_version",
)


def add(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    conn: argparse.ArgumentParser,
    realm: argparse.ArgumentParser,
) -> None:
    p = commands.add_parser(
        "edit",
        help="edit a directive's text in $VISUAL or $EDITOR (compare-and-swap)",
        parents=[conn, realm],
    )
    p.add_argument("ref", metavar="ID")
    p.add_argument("--message", "-m", help="why (asked for on a terminal when left out)")
    p.add_argument(
        "--yes",
        "-y",
        action="store_true",
        help="on a conflict, re-apply your edit on top of the new revision without asking",
    )
    p.set_defaults(client_run=edit)


def edit(ctx: Context, args: argparse.Namespace) -> int:
    realm = ctx.realm()
    if args.message is None and not sys.stdin.isatty():
        # Refuse before the editor opens, not after the work is done.
        raise UsageError("no message: pass -m/--message (there is no terminal to ask on)")
    start = resolve(ctx, args.ref)
    draft = _Draft(start.body, start.id)
    done = False  # saved, or nothing to save: the draft can go
    try:
        status = _run_editor(draft.path)
        if status != 0:
            print(
                f"charter: the editor exited with status {status}; nothing written", file=sys.stderr
            )
            return exits.ERROR
        mine = draft.read()
        if mine == start.body:
            print(f"unchanged: {_name(start)} has this text already; nothing written")
            done = True
            return exits.OK
        if not mine.strip():
            raise InvalidFile("the text is empty; nothing written")
        message = args.message if args.message is not None else _ask_message()
        if start.active_version is None:
            print(f"note: {_name(start)} is deactivated; saving makes this text active again")
        patch = m.Patch(body=mine)
        if message:
            patch.message = message
        err = Style.for_stream(args.color, sys.stderr)
        updated = _save(ctx.charter, realm, start, patch, yes=args.yes, style=err)
        if updated is None:
            draft.close(keep=True)
            print(
                f"charter: not saved; to save it later: charter set {args.ref} "
                f"--body-file {draft.path} -m MESSAGE",
                file=sys.stderr,
            )
            return exits.CONFLICT
        done = True
        verb = "updated" if updated.changed else "unchanged"
        print(f"{verb} {_name(updated)}: v{updated.active_version}, revision {updated.revision}")
        return exits.OK
    finally:
        draft.close(keep=not done)


def _save(
    charter: Charter, realm: str, start: m.Directive, patch: m.Patch, *, yes: bool, style: Style
) -> m.Directive | None:
    """The CAS update, re-applied on top of each newer revision the user agrees to; None if not."""
    seen = start  # the directive as the user last saw it
    for conflicts in range(MAX_CONFLICTS + 1):
        try:
            return charter.update(seen.id, patch, expected_revision=seen.revision, realm=realm)
        except errors.StaleRevision:
            current = charter.get(seen.id, realm=realm)
        _explain(charter, realm, seen, current, patch, style)
        if conflicts == MAX_CONFLICTS:
            print(f"charter: gave up after {conflicts + 1} conflicts in a row", file=sys.stderr)
            return None
        question = f"Re-apply your edit on top of revision {current.revision}? [y/N] "
        if not _confirm(question, yes=yes):
            return None
        seen = current
    raise AssertionError("unreachable: the last round returns")


def _explain(
    charter: Charter,
    realm: str,
    seen: m.Directive,
    current: m.Directive,
    patch: m.Patch,
    style: Style,
) -> None:
    """What changed between the revision the edit started from and the current one, and who."""
    out = sys.stderr
    print(
        f"charter: {_name(seen)} changed while you were editing "
        f"(revision {seen.revision} → {current.revision}):",
        file=out,
    )
    for field in _ATTRIBUTES:
        before, after = getattr(seen, field), getattr(current, field)
        if before != after:
            print(f"  {field}: {_show(field, before)} → {_show(field, after)}", file=out)
    history = charter.history(seen.id, limit=20, realm=realm)
    newer = [e for e in reversed(history.items) if e.revision > seen.revision]  # oldest first
    for line in _views.history_lines(m.HistoryPage(items=newer, next_cursor=None), style):
        print(f"  {line}", file=out)
    if seen.body != current.body:
        started = f"v{seen.active_version} (revision {seen.revision}, where you started)"
        now = f"v{current.active_version} (revision {current.revision}, now)"
        print(style.diff(_unified(seen.body, current.body, started, now)), file=out)
        assert isinstance(patch.body, str)
        yours = f"your edit on top of revision {current.revision}"
        print("Re-applying makes this change to it:", file=out)
        print(style.diff(_unified(current.body, patch.body, now, yours)), file=out)
    else:
        print("  (the text is as you started from it)", file=out)


def _confirm(question: str, *, yes: bool) -> bool:
    sys.stdout.flush()
    sys.stderr.write(question)
    if yes:
        sys.stderr.write("yes (--yes)\n")
        return True
    if not sys.stdin.isatty():
        sys.stderr.write("no (no terminal to ask on; --yes re-applies)\n")
        return False
    sys.stderr.flush()
    try:
        answer = input()
    except EOFError:
        return False
    return answer.strip().lower() in {"y", "yes"}


def _ask_message() -> str:
    sys.stdout.flush()
    sys.stderr.write("Message (why this change): ")
    sys.stderr.flush()
    try:
        message = input().strip()
    except EOFError:
        message = ""
    if not message:
        raise UsageError("no message given; nothing written")
    return message


def _run_editor(path: Path) -> int:
    chosen = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if not chosen and not (sys.stdin.isatty() and sys.stdout.isatty()):
        # vi, the fallback, needs a terminal: without one it only prints escape codes.
        raise UsageError("no editor: set $VISUAL or $EDITOR (there is no terminal for vi)")
    command = shlex.split(chosen or "vi")
    sys.stdout.flush()
    try:
        return subprocess.run([*command, str(path)], check=False).returncode
    except OSError as exc:
        raise UsageError(
            f"cannot run the editor {command[0]!r}: {exc.strerror}; set $VISUAL or $EDITOR"
        ) from exc


class _Draft:
    """The temp file the editor works on: removed once nothing in it can be lost."""

    def __init__(self, body: str, directive_id: str) -> None:
        # Editors end a file with a newline; one the body lacks is added here and taken back
        # off on reading, so saving without touching the text is not a change.
        self.added_newline = not body.endswith("\n")
        self.original = body
        fd, name = tempfile.mkstemp(prefix=f"charter-edit-{directive_id}-", suffix=".md")
        os.close(fd)  # mkstemp made it readable by its owner only: directive text is private
        self.path = Path(name)
        self.closed = False
        self.path.write_text(body + "\n" if self.added_newline else body, encoding="utf-8")

    def read(self) -> str:
        try:
            text = self.path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidFile(f"{self.path} is not UTF-8 text; nothing written") from exc
        except OSError as exc:
            raise UsageError(f"cannot read {self.path}: {exc.strerror}") from exc
        if self.added_newline and text.endswith("\n"):
            text = text[:-1]
        return text

    def close(self, *, keep: bool) -> None:
        """Remove the file, unless `keep` and it holds an edit that was not saved."""
        if self.closed:
            return
        self.closed = True
        if keep and self._holds_an_edit():
            print(f"charter: your text is kept in {self.path}", file=sys.stderr)
            return
        self.path.unlink(missing_ok=True)

    def _holds_an_edit(self) -> bool:
        try:
            text = self.read()
        except InvalidFile:
            return True  # not text this can judge, so not this to throw away
        except UsageError:
            return False  # gone
        return text != self.original and bool(text.strip())


def _unified(before: str, after: str, from_label: str, to_label: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(), after.splitlines(), from_label, to_label, lineterm=""
    )
    return "\n".join(lines)


def _name(d: m.Directive) -> str:
    return f"{d.id} ({d.key})" if d.key else d.id


def _show(field: str, value: object) -> str:
    return repr(value) if field == "title" else str(value)
