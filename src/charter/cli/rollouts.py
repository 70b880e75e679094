"""`charter rollout start|set|promote|abort|status`: staged rollouts from the command line."""

from __future__ import annotations

import argparse
from typing import TypeAlias

from charter.cli import exits
from charter.cli._context import Context, UsageError, resolve
from charter.client import models as m

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

SHOW_PINNED = 10  # `rollout status` names this many pinned agents, then counts the rest


def add(
    commands: Subparsers,
    conn: argparse.ArgumentParser,
    realm: argparse.ArgumentParser,
    as_json: argparse.ArgumentParser,
) -> None:
    top = commands.add_parser("rollout", help="put a version in front of some of the agents")
    sub = top.add_subparsers(dest="rollout_command", required=True)
    parents = [conn, realm, as_json]

    p = sub.add_parser("start", help="start rolling a version out to a percent", parents=parents)
    p.add_argument("ref", metavar="ID")
    p.add_argument("version", type=int, metavar="VERSION", help="the candidate (a draft)")
    _change_flags(p, percent_required=True)
    p.set_defaults(client_run=start)

    p = sub.add_parser(
        "set", help="change the running rollout's percent, pins or guard", parents=parents
    )
    p.add_argument("ref", metavar="ID")
    _change_flags(p, percent_required=False)
    p.set_defaults(client_run=change)

    for name, help_text in (
        ("promote", "make the candidate active and end the rollout"),
        ("abort", "end the rollout: every agent sees the active version again"),
    ):
        p = sub.add_parser(name, help=help_text, parents=parents)
        p.add_argument("ref", metavar="ID")
        p.add_argument("--message", "-m", help="why")
        p.add_argument("--expected-revision", type=int, help="fail unless at this revision")
        p.set_defaults(client_run=promote if name == "promote" else abort)

    p = sub.add_parser("status", help="the running rollout and how its arms do", parents=parents)
    p.add_argument("ref", metavar="ID")
    p.set_defaults(client_run=status)


def _change_flags(p: argparse.ArgumentParser, *, percent_required: bool) -> None:
    p.add_argument("--percent", type=float, required=percent_required, help="0-100, 2 decimals")
    p.add_argument(
        "--pin", action="append", default=None, metavar="AGENT", help="always a candidate"
    )
    p.add_argument("--unpin-all", action="store_true", help="(set) drop every pinned agent")
    p.add_argument("--guard-metric", help="abort on a regression of this metric")
    p.add_argument(
        "--lower-is-better", action="store_true", help="the guard's metric should go down"
    )
    p.add_argument("--min-samples", type=int, default=30, help="per arm, before the guard acts")
    p.add_argument("--max-regression", type=float, default=0.0, help="tolerated, in units")
    p.add_argument("--no-guard", action="store_true", help="(set) remove the guard")
    p.add_argument("--message", "-m", help="why")
    p.add_argument("--expected-revision", type=int, help="fail unless at this revision")


def _guard(args: argparse.Namespace, current: m.Guard | None) -> m.Guard | None:
    if args.no_guard:
        return None
    if args.guard_metric is None:
        return current
    return m.Guard(
        metric=args.guard_metric,
        higher_is_better=not args.lower_is_better,
        min_samples=args.min_samples,
        max_regression=args.max_regression,
    )


def start(ctx: Context, args: argparse.Namespace) -> int:
    current = resolve(ctx, args.ref)
    result = ctx.charter.start_rollout(
        current.id,
        args.version,
        args.percent,
        expected_revision=args.expected_revision or current.revision,
        agents=args.pin or [],
        guard=_guard(args, None),
        message=args.message,
        realm=ctx.realm(),
    )
    return _said(ctx, result, "started")


def change(ctx: Context, args: argparse.Namespace) -> int:
    current = resolve(ctx, args.ref)
    running = current.rollout
    if running is None:
        raise UsageError(f"{current.id} has no running rollout: start one first")
    pinned = [] if args.unpin_all else sorted({*running.agents, *(args.pin or [])})
    result = ctx.charter.start_rollout(
        current.id,
        running.version,
        running.percent if args.percent is None else args.percent,
        expected_revision=args.expected_revision or current.revision,
        agents=pinned,
        guard=_guard(args, running.guard),
        message=args.message,
        realm=ctx.realm(),
    )
    return _said(ctx, result, "changed" if result.changed else "unchanged")


def promote(ctx: Context, args: argparse.Namespace) -> int:
    current = resolve(ctx, args.ref)
    result = ctx.charter.promote_rollout(
        current.id,
        expected_revision=args.expected_revision or current.revision,
        message=args.message,
        realm=ctx.realm(),
    )
    return _said(ctx, result, "promoted")


def abort(ctx: Context, args: argparse.Namespace) -> int:
    current = resolve(ctx, args.ref)
    result = ctx.charter.abort_rollout(
        current.id,
        expected_revision=args.expected_revision or current.revision,
        message=args.message,
        realm=ctx.realm(),
    )
    return _said(ctx, result, "aborted")


def _said(ctx: Context, d: m.Directive, verb: str) -> int:
    if ctx.json:
        ctx.dump(d)
        return exits.OK
    if d.rollout is None:
        print(f"{verb} {d.id}: v{d.active_version} active for every agent, revision {d.revision}")
        return exits.OK
    r = d.rollout
    guard = f", guarded on {r.guard.metric}" if r.guard else ""
    print(f"{verb} {_headline(r, d.id, d.active_version)}{guard}, revision {d.revision}")
    return exits.OK


def _headline(r: m.Rollout, directive_id: str, active_version: int | None) -> str:
    """`rollout rol_… of dir_…: v2 to 10 % + 1 pinned (control v1)`."""
    pinned = f" + {len(r.agents)} pinned" if r.agents else ""
    return (
        f"rollout {r.id} of {directive_id}: v{r.version} to {r.percent:g} %{pinned}"
        f" (control v{active_version})"
    )


def status(ctx: Context, args: argparse.Namespace) -> int:
    current = resolve(ctx, args.ref)
    report = ctx.charter.rollout(current.id, realm=ctx.realm())
    if ctx.json:
        ctx.dump(report)
        return exits.OK
    r = report.rollout
    since = r.started_at.isoformat(timespec="seconds")
    print(f"{_headline(r, report.directive_id, report.active_version)}, since {since}")
    if r.agents:
        more = f" and {len(r.agents) - SHOW_PINNED} more" if len(r.agents) > SHOW_PINNED else ""
        print(f"pinned: {', '.join(r.agents[:SHOW_PINNED])}{more}")
    if r.guard:
        better = "higher" if r.guard.higher_is_better else "lower"
        print(
            f"guard: {r.guard.metric} ({better} is better), at {r.guard.min_samples} samples an"
            f" arm, aborts past a regression of {r.guard.max_regression:g}"
        )
    if not report.metrics:
        print("no outcomes yet")
    for metric in report.metrics:
        print(f"{metric.metric}:")
        for arm, s in (("candidate", metric.candidate), ("control", metric.control)):
            mean = "-" if s.mean is None else f"{s.mean:.4f}"
            sd = "-" if s.sd is None else f"{s.sd:.4f}"
            print(f"  {arm:<9}  n={s.n:<6} mean={mean:<8} sd={sd}")
        d = metric.difference
        if d is not None:
            print(
                f"  candidate - control: {d.estimate:+.4f}  95 % CI [{d.low:+.4f}, {d.high:+.4f}]"
            )
    return exits.OK
