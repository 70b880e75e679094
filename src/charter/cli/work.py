"""Work coordination and schedules from the command line: claims, claim, finish, schedule."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

from charter.cli import exits
from charter.cli._context import Context, UsageError, resolve
from charter.client import errors
from charter.client import models as m
from charter.client.vocabulary import CLAIM_STATES, OUTCOMES, STATUSES


def add(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    conn: argparse.ArgumentParser,
    realm: argparse.ArgumentParser,
    as_json: argparse.ArgumentParser,
) -> None:
    read = [conn, realm, as_json]
    p = commands.add_parser("claims", help="claims, and what an agent may claim now", parents=read)
    p.add_argument("--agent", help="only this agent's claims, and its claimable directives")
    p.add_argument("--state", choices=CLAIM_STATES)
    p.add_argument("--wait", type=int, help="with --agent: wait up to N s for claimable work")
    p.set_defaults(client_run=claims)

    p = commands.add_parser("claim", help="claim a directive's work for an agent", parents=read)
    p.add_argument("ref", metavar="ID")
    p.add_argument("--agent", required=True)
    p.add_argument("--lease", type=int, default=60, help="lease seconds (5 to 3600)")
    p.add_argument("--rerun", action="store_true", help="reopen a terminal directive")
    p.set_defaults(client_run=claim)

    p = commands.add_parser("finish", help="finish a claim: succeeded or failed", parents=read)
    p.add_argument("ref", metavar="ID")
    p.add_argument("claim_id", metavar="CLAIM")
    p.add_argument("outcome", choices=OUTCOMES)
    p.add_argument("--error-code")
    p.add_argument("--result", help="a JSON value to record (≤ 8 KiB)")
    p.add_argument("--cascade", action="store_true", help="complete the open subtree too")
    p.set_defaults(client_run=finish)

    p = commands.add_parser("schedule", help="schedule a change of a directive", parents=[])
    sub = p.add_subparsers(dest="schedule_command", required=True)
    q = sub.add_parser("add", help="run an action at a time, once", parents=read)
    q.add_argument("ref", metavar="ID")
    q.add_argument("--at", required=True, help="when: an ISO 8601 time with its UTC offset")
    action = q.add_mutually_exclusive_group(required=True)
    action.add_argument("--status", choices=STATUSES)
    action.add_argument("--activate", type=int, metavar="VERSION")
    action.add_argument("--action", help='the action as JSON, e.g. {"promote": true}')
    q.add_argument("--expected-revision", type=int, help="fail unless still at this revision")
    q.set_defaults(client_run=schedule_add)
    q = sub.add_parser("list", help="a directive's schedules", parents=read)
    q.add_argument("ref", metavar="ID")
    q.set_defaults(client_run=schedule_list)
    q = sub.add_parser("cancel", help="cancel a pending schedule", parents=read)
    q.add_argument("ref", metavar="ID")
    q.add_argument("schedule_id", metavar="SCHEDULE")
    q.set_defaults(client_run=schedule_cancel)


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what} is not JSON: {exc.msg}") from None


def claims(ctx: Context, args: argparse.Namespace) -> int:
    page = ctx.charter.claims(agent=args.agent, state=args.state, wait=args.wait, realm=ctx.realm())
    if ctx.json:
        ctx.dump(page)
        return exits.OK
    for c in page.items:
        # A live claim's lease, or when the claim ended (finished, or expired at expires_at).
        when = (
            f"until {c.expires_at.isoformat()}"
            if c.finished_at is None
            else f"ended {c.finished_at.isoformat()}"
        )
        print(f"{c.id}  {c.directive_id}  {c.agent_id}  {c.state}  attempt {c.attempt}  {when}")
    if page.claimable is not None:
        print(f"claimable: {' '.join(page.claimable) or '(none)'}")
    return exits.OK


def _directive_id(ctx: Context, ref: str) -> str:
    """A `dir_…` id as given (an agent key may claim what it may not read), or a key's
    directive, looked up."""
    return ref if ref.startswith("dir_") else resolve(ctx, ref).id


def claim(ctx: Context, args: argparse.Namespace) -> int:
    directive_id = _directive_id(ctx, args.ref)
    try:
        made = ctx.charter.claim(
            directive_id, args.agent, lease_seconds=args.lease, rerun=args.rerun, realm=ctx.realm()
        )
    except errors.AlreadyClaimed as exc:
        # Who holds it and until when: whether to wait, or to see why it is still held.
        held = exc.problem
        holder = f" by {held.holder}" if held.holder else ""
        until = f" until {held.expires_at}" if held.expires_at else ""
        said = f"charter: already-claimed: {directive_id} is claimed{holder}{until}"
        print(said, file=sys.stderr)
        return exits.for_error(exc)
    if ctx.json:
        ctx.dump(made)
        return exits.OK
    print(
        f"claimed {directive_id}: {made.id} (attempt {made.attempt}) "
        f"until {made.expires_at.isoformat()}"
    )
    return exits.OK


def finish(ctx: Context, args: argparse.Namespace) -> int:
    directive_id = _directive_id(ctx, args.ref)
    result = None if args.result is None else _json(args.result, "--result")
    done = ctx.charter.finish(
        directive_id,
        args.claim_id,
        args.outcome,
        result=result,
        error_code=args.error_code,
        cascade=args.cascade,
        realm=ctx.realm(),
    )
    if ctx.json:
        ctx.dump(done)
        return exits.OK
    note = "" if done.changed else " (already finished so: nothing changed)"
    print(f"finished {args.claim_id} {args.outcome}: {directive_id} is {done.status}{note}")
    return exits.OK


def _action(args: argparse.Namespace) -> dict[str, Any]:
    if args.status is not None:
        return {"status": args.status}
    if args.activate is not None:
        return {"activate": args.activate}
    found = _json(args.action, "--action")
    if not isinstance(found, dict):
        raise UsageError("--action is a JSON object")
    return found


def schedule_add(ctx: Context, args: argparse.Namespace) -> int:
    try:
        at = datetime.fromisoformat(args.at)
    except ValueError:
        raise UsageError("--at is an ISO 8601 time, e.g. 2026-12-24T09:00:00+00:00") from None
    if at.tzinfo is None:
        raise UsageError("--at needs its UTC offset (…+00:00 or …Z)")
    node = resolve(ctx, args.ref)
    made = ctx.charter.schedule(
        node.id, at, _action(args), expected_revision=args.expected_revision, realm=ctx.realm()
    )
    if ctx.json:
        ctx.dump(made)
        return exits.OK
    print(f"scheduled {made.id} on {node.id} at {made.at.isoformat()}: {json.dumps(made.action)}")
    return exits.OK


def _print_schedule(s: m.Schedule) -> None:
    reason = f" ({s.reason})" if s.reason else ""
    print(f"{s.id}  {s.at.isoformat()}  {json.dumps(s.action)}  {s.state}{reason}")


def schedule_list(ctx: Context, args: argparse.Namespace) -> int:
    node = resolve(ctx, args.ref)
    page = ctx.charter.schedules(node.id, limit=500, realm=ctx.realm())
    if ctx.json:
        ctx.dump(page)
        return exits.OK
    for s in page.items:
        _print_schedule(s)
    return exits.OK


def schedule_cancel(ctx: Context, args: argparse.Namespace) -> int:
    node = resolve(ctx, args.ref)
    ended = ctx.charter.cancel_schedule(node.id, args.schedule_id, realm=ctx.realm())
    if ctx.json:
        ctx.dump(ended)
        return exits.OK
    print(f"cancelled {ended.id}")
    return exits.OK
