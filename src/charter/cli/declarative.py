"""`charter export` and `charter apply`: a realm's goal tree as a YAML file in git."""

from __future__ import annotations

import argparse
import contextlib
import os
import stat
import sys
import tempfile
from pathlib import Path

from charter.cli import exits, treefile
from charter.cli._context import Context, InvalidFile, UsageError
from charter.cli._style import Style
from charter.cli.plan import Plan, RealmState, Step, make_plan
from charter.client import Charter, errors
from charter.client import models as m

PROGRESS_FROM = 20  # steps: smaller applies draw no bar, only the closing line
DEFAULT_MAX_PRUNE = 0.2  # of the realm's live directives: a larger prune needs --yes


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:  # nan too
        raise argparse.ArgumentTypeError(f"{text!r} is not a share from 0 to 1 (0.2: 20 %)")
    return value


def add(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    conn: argparse.ArgumentParser,
    realm: argparse.ArgumentParser,
) -> None:
    p = commands.add_parser("export", help="write the realm's tree as YAML", parents=[conn, realm])
    p.add_argument("realm_arg", nargs="?", metavar="REALM")
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write to this file, not stdout; all or nothing: on any failure FILE is untouched",
    )
    p.set_defaults(client_run=export)

    p = commands.add_parser(
        "apply", help="make the realm match a YAML tree file", parents=[conn, realm]
    )
    p.add_argument("-f", "--file", required=True, help="the tree file ('-': stdin)")
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    p.add_argument("--prune", action="store_true", help="deactivate what the file leaves out")
    p.add_argument(
        "--max-prune",
        type=_share,
        default=DEFAULT_MAX_PRUNE,
        metavar="SHARE",
        help="with --prune: deactivating more than this share of the realm's live directives, "
        f"or all of them, needs --yes (default: {DEFAULT_MAX_PRUNE})",
    )
    p.add_argument(
        "--yes", "-y", action="store_true", help="go ahead with a prune above --max-prune"
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        help=f"a progress bar on stderr for {PROGRESS_FROM} steps or more "
        "(default: when stderr is a terminal)",
    )
    p.set_defaults(client_run=apply)


def fetch_state(charter: Charter, realm: str) -> RealmState:
    """Every directive of the realm, in full (bodies included), with the realm's revision."""
    info = charter.realm_info(realm)
    full = [charter.get(s.id, realm=realm) for s in charter.iter_directives(realm=realm)]
    return RealmState(realm, info.revision, full)


# export


def export(ctx: Context, args: argparse.Namespace) -> int:
    """The realm's tree as YAML, siblings ordered by key so that diffs stay small.

    Every directive needs a key (apply matches on it): while one has none, export refuses
    before writing anything.
    """
    realm = ctx.realm(args.realm_arg)
    forest = ctx.charter.tree(realm)
    state = fetch_state(ctx.charter, realm)
    keyless = [d for d in state.directives if d.key is None]
    if keyless:
        listed = ", ".join(d.id for d in keyless[:5]) + (", …" if len(keyless) > 5 else "")
        raise InvalidFile(
            f"{len(keyless)} directive(s) of {realm} have no key ({listed}), so apply could "
            "not match them; nothing was written. Give each one a key with "
            "`charter set ID --key KEY`, then export again"
        )
    by_id = {d.id: d for d in state.directives}

    def node(t: m.TreeNode) -> treefile.FileNode:
        d = by_id[t.id]
        return treefile.FileNode(
            key=d.key or "",
            level=d.level,
            title=d.title,
            body=d.body,
            status=d.status,
            priority=d.priority,
            owner_agent_id=d.owner_agent_id,
            injection_mode=d.injection_mode,
            metadata=d.metadata,
            active=d.active_version is not None,
            children=sorted((node(c) for c in t.children), key=_by_key),
        )

    roots = sorted((node(r) for r in forest.roots), key=_by_key)
    defaults = ctx.charter.variables(realm=realm).variables
    tree = treefile.TreeFile(realm=realm, variables=defaults or None, directives=roots)
    text = f"# charter export {realm} (realm revision {forest.revision})\n" + treefile.dump(tree)
    if args.output:
        write_atomically(Path(args.output), text)
    else:
        sys.stdout.write(text)
    return exits.OK


def _by_key(node: treefile.FileNode) -> str:
    return node.key


def write_atomically(path: Path, text: str) -> None:
    """`text` in `path`, all or nothing: a temp file beside it, flushed, then renamed over it.

    On any failure `path` is as it was (absent, or its old content) and no temp file is left.
    """
    target = Path(os.path.realpath(path))  # through a symlink, so the link stays a link
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from exc
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        if isinstance(exc, OSError):
            raise UsageError(f"cannot write {path}: {exc.strerror}") from exc
        raise


# apply


def apply(ctx: Context, args: argparse.Namespace) -> int:
    source = args.file
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidFile(f"{source}: not UTF-8 (byte {exc.start})") from exc
    desired = treefile.load(text, source)
    realm = ctx.realm(desired.realm)  # --realm, else the file's, else $CHARTER_REALM
    if args.prune and not desired.directives:
        raise InvalidFile(
            f"{source} declares no directives: with --prune it would deactivate the whole "
            "realm, so an empty file never prunes (an export that failed leaves one)"
        )
    state = fetch_state(ctx.charter, realm)
    plan = make_plan(desired, state, prune=args.prune)
    defaults = ctx.charter.variables(realm=realm)
    wanted = desired.variables
    vars_change = wanted is not None and wanted != defaults.variables
    if vars_change:
        assert wanted is not None
        print_variables(defaults.variables, wanted, ctx.style)
    print_plan(plan, ctx.style, variables_too=vars_change)
    too_many = _prune_too_large(plan, args.max_prune)
    if too_many and not args.yes:
        print(f"charter: {too_many}; check the file, then pass --yes to go ahead", file=sys.stderr)
        if not args.dry_run:
            return exits.USAGE
    if args.dry_run or (not plan.steps and not vars_change):
        return exits.OK
    if not vars_change or wanted is None:
        return execute(ctx.charter, plan, state, ctx.style, progress=args.progress)
    # Defaults a directive will use must exist before it is written, and a default may go only
    # once no directive uses it (the server refuses a hole): add first, remove last.
    added = ctx.charter.set_variables(
        {**defaults.variables, **wanted}, expected_revision=defaults.revision, realm=realm
    )
    code = exits.OK
    if plan.steps:
        code = execute(ctx.charter, plan, state, ctx.style, progress=args.progress)
    if code == exits.OK and added.variables != wanted:
        ctx.charter.set_variables(wanted, expected_revision=added.revision, realm=realm)
    print(f"Set the default template variables of {realm}.")
    return code


def print_variables(current: dict[str, str], wanted: dict[str, str], style: Style) -> None:
    """The plan for the realm's default template variables: names only, never values."""
    changes = [f"+{n}" for n in sorted(wanted.keys() - current.keys())]
    changes += [f"~{n}" for n in sorted(current.keys() & wanted.keys()) if current[n] != wanted[n]]
    changes += [f"-{n}" for n in sorted(current.keys() - wanted.keys())]
    print(f"{style('~', 'yellow', 'bold')} variables {', '.join(changes)}", file=sys.stdout)


def _prune_too_large(plan: Plan, max_share: float) -> str | None:
    """Why this plan's prune needs --yes: more than `max_share` of the live directives, or all."""
    if not plan.pruned or not plan.live:
        return None
    share = plan.pruned / plan.live
    if plan.pruned < plan.live and share <= max_share:
        return None
    what = "every one" if plan.pruned >= plan.live else f"{share:.0%}"
    return (
        f"--prune would deactivate {plan.pruned} of the {plan.live} live directive(s) of "
        f"{plan.realm} ({what}; --max-prune is {max_share:g})"
    )


_MARK = {"create": ("+", "green"), "update": ("~", "yellow"), "status": ("!", "cyan")}


def print_plan(plan: Plan, style: Style, *, variables_too: bool = False) -> None:
    out = sys.stdout
    if not plan.steps and not variables_too:
        print(f"No changes: realm {plan.realm} matches the file.", file=out)
    for step in plan.steps:
        mark, colour = _MARK.get(step.kind, ("-", "red"))
        name = step.key or step.directive_id or "?"
        head = f"{style(mark, colour, 'bold')} {step.kind} {style(name, 'bold')}"
        print(f"{head} {style(repr(step.title), 'dim')}", file=out)
        for change in step.changes:
            print(f"    {change}", file=out)
        if step.diff:
            for line in style.diff(step.diff).splitlines():
                print(f"      {line}", file=out)
    if plan.untouched:
        print(
            style(
                f"{len(plan.untouched)} live directive(s) are not in the file and are left as "
                "they are (--prune deactivates them).",
                "dim",
            ),
            file=out,
        )
    if plan.steps:
        counts = [
            f"{plan.count('create')} to create",
            f"{plan.count('update')} to update",
            f"{plan.count('status')} status change(s)",
            f"{plan.count('deactivate')} to deactivate"
            + (f" ({plan.pruned} by --prune, of {plan.live} live)" if plan.pruned else ""),
        ]
        print(f"Plan: {', '.join(counts)}.", file=out)
    out.flush()


def execute(
    charter: Charter, plan: Plan, state: RealmState, style: Style, *, progress: bool | None = None
) -> int:
    """Each step in turn, CAS against the planned revision; on a conflict, stop and say why.

    `progress`: draw the bar (None: when stderr is a terminal), for PROGRESS_FROM steps or more.
    """
    realm = plan.realm
    live = {d.key: (d.id, d.revision) for d in state.directives if d.key}
    planned = {d.key: d for d in state.directives if d.key}
    total = len(plan.steps)
    bar = _Progress(total, enabled=total >= PROGRESS_FROM, force=progress)
    for done, step in enumerate(plan.steps):
        try:
            result = _run(charter, realm, step, live)
        except errors.Conflict as exc:
            bar.finish()
            _explain_conflict(charter, realm, step, exc, planned.get(step.key), done, total)
            return exits.CONFLICT
        except errors.ProblemError:
            bar.finish()
            print(
                f"charter: stopped at step {done + 1} of {total} ({step.kind} {step.key}).",
                file=sys.stderr,
            )
            raise
        if result is not None and result.key:
            live[result.key] = (result.id, result.revision)
        bar.step(done + 1, f"{step.kind} {step.key}")
    bar.finish()
    print(f"Applied {total} step(s) to {realm}.")
    return exits.OK


def _run(
    charter: Charter, realm: str, step: Step, live: dict[str, tuple[str, int]]
) -> m.Directive | None:
    if step.kind == "create":
        assert step.new is not None
        if step.parent_key is not None:
            step.new.parent_id = live[step.parent_key][0]
        return charter.create(step.new, realm=realm)
    directive_id, revision = live.get(
        step.key, (step.directive_id or "", step.planned_revision or 0)
    )
    if step.kind == "deactivate":
        charter.deactivate(
            directive_id, expected_revision=revision, message="charter apply", realm=realm
        )
        if step.key:
            live[step.key] = (directive_id, revision + 1)
        return None
    assert step.patch is not None
    if step.moved:
        step.patch.parent_id = live[step.parent_key][0] if step.parent_key else None
    return charter.update(directive_id, step.patch, expected_revision=revision, realm=realm)


def _explain_conflict(
    charter: Charter,
    realm: str,
    step: Step,
    exc: errors.Conflict,
    planned: m.Directive | None,
    done: int,
    total: int,
) -> None:
    err = sys.stderr
    name = step.key or step.directive_id
    print(
        f"charter: conflict at step {done + 1} of {total} ({step.kind} {name}): {exc.code}: "
        f"{exc.detail}",
        file=err,
    )
    if isinstance(exc, errors.StaleRevision) and planned is not None:
        try:
            now = charter.get(planned.id, realm=realm)
            history = charter.history(planned.id, limit=20, realm=realm)
        except errors.CharterError:
            now, history = None, None
        if now is not None:
            print(
                f"{name} was at revision {planned.revision} when planned and is at "
                f"{now.revision} now. Changed meanwhile:",
                file=err,
            )
            for field in (
                "title",
                "body",
                "status",
                "priority",
                "owner_agent_id",
                "injection_mode",
                "metadata",
                "parent_id",
                "active_version",
            ):
                if getattr(planned, field) != getattr(now, field):
                    print(f"  {field}", file=err)
        if history is not None:
            for entry in history.items:
                if entry.revision > planned.revision:
                    who = entry.actor_name or entry.actor
                    why = f" — {entry.message}" if entry.message else ""
                    print(f"  #{entry.seq} {entry.type} by {who}{why}", file=err)
    print(
        f"{done} step(s) were applied. Run `charter apply` again to plan from the realm as it "
        "is now.",
        file=err,
    )


class _Progress:
    """A one-line progress bar on stderr, for large applies on a terminal (or when forced)."""

    def __init__(self, total: int, *, enabled: bool, force: bool | None = None) -> None:
        self.total = total
        self.enabled = enabled and (sys.stderr.isatty() if force is None else force)
        self.shown = False

    def step(self, done: int, label: str) -> None:
        if not self.enabled:
            return
        width = 30
        filled = width * done // self.total
        bar = "#" * filled + "." * (width - filled)
        sys.stderr.write(f"\r[{bar}] {done}/{self.total} {label[:40]:<40}")
        sys.stderr.flush()
        self.shown = True

    def finish(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            self.shown = False
