"""`charter profile get|set` and `charter vars get|set`: template variables' values.

`set` takes NAME=VALUE pairs and merges them into the map (`--unset NAME` removes one,
`--replace` starts from nothing), then writes the whole map at the revision it read.
"""

from __future__ import annotations

import argparse
from typing import TypeAlias

from charter.cli import exits
from charter.cli._context import Context, UsageError
from charter.client import models as m

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add(
    commands: Subparsers,
    conn: argparse.ArgumentParser,
    realm: argparse.ArgumentParser,
    as_json: argparse.ArgumentParser,
) -> None:
    parents = [conn, realm, as_json]
    top = commands.add_parser("profile", help="an agent's values for template variables")
    sub = top.add_subparsers(dest="profile_command", required=True)
    p = sub.add_parser("get", help="show the agent's profile", parents=parents)
    p.add_argument("agent", metavar="AGENT")
    p.set_defaults(client_run=profile_get)
    p = sub.add_parser("set", help="set (or --unset) values in the profile", parents=parents)
    p.add_argument("agent", metavar="AGENT")
    _set_flags(p)
    p.set_defaults(client_run=profile_set)

    top = commands.add_parser("vars", help="the realm's default values for template variables")
    sub = top.add_subparsers(dest="vars_command", required=True)
    p = sub.add_parser("get", help="show the realm's defaults", parents=parents)
    p.set_defaults(client_run=vars_get)
    p = sub.add_parser("set", help="set (or --unset) default values", parents=parents)
    _set_flags(p)
    p.set_defaults(client_run=vars_set)


def _set_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("pairs", nargs="*", metavar="NAME=VALUE")
    p.add_argument("--unset", action="append", default=[], metavar="NAME", help="remove it")
    p.add_argument("--replace", action="store_true", help="start from an empty map")
    p.add_argument("--expected-revision", type=int, help="fail unless at this revision")


def merged(current: dict[str, str], args: argparse.Namespace) -> dict[str, str]:
    out = {} if args.replace else dict(current)
    for pair in args.pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"{pair!r} is not NAME=VALUE")
        out[name] = value
    for name in args.unset:
        out.pop(name, None)
    return out


def _show(ctx: Context, v: m.Variables, verb: str | None = None) -> int:
    if ctx.json:
        ctx.dump(v)
        return exits.OK
    whose = f"agent {v.agent_id}" if v.agent_id else f"realm {v.realm_id} defaults"
    if verb is not None:
        print(f"{verb} {whose}: revision {v.revision}")
    else:
        print(f"{whose}: revision {v.revision}")
    for name in sorted(v.variables):
        print(f"  {name} = {v.variables[name]}")
    return exits.OK


def profile_get(ctx: Context, args: argparse.Namespace) -> int:
    return _show(ctx, ctx.charter.profile(args.agent, realm=ctx.realm()))


def profile_set(ctx: Context, args: argparse.Namespace) -> int:
    realm = ctx.realm()
    current = ctx.charter.profile(args.agent, realm=realm)
    revision = current.revision if args.expected_revision is None else args.expected_revision
    written = ctx.charter.set_profile(
        args.agent, merged(current.variables, args), expected_revision=revision, realm=realm
    )
    return _show(ctx, written, "set" if written.changed else "unchanged")


def vars_get(ctx: Context, args: argparse.Namespace) -> int:
    return _show(ctx, ctx.charter.variables(realm=ctx.realm()))


def vars_set(ctx: Context, args: argparse.Namespace) -> int:
    realm = ctx.realm()
    current = ctx.charter.variables(realm=realm)
    revision = current.revision if args.expected_revision is None else args.expected_revision
    written = ctx.charter.set_variables(
        merged(current.variables, args), expected_revision=revision, realm=realm
    )
    return _show(ctx, written, "set" if written.changed else "unchanged")
