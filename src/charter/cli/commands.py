"""Client-side commands: the parser for each, and what each does through the client."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TypeAlias

import msgspec

from charter.cli import _views, declarative, edit, exits, rollouts, variables, webhooks, work
from charter.cli._context import Context, UsageError, connection_options, resolve
from charter.cli._context import json_option as _json_option
from charter.cli._context import realm_option as _realm_option
from charter.client import errors
from charter.client import models as m
from charter.client.vocabulary import INJECTION_MODES, LEVELS, PRIORITIES, STATUSES

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add(
    commands: Subparsers, key_commands: Subparsers, key_create: argparse.ArgumentParser
) -> None:
    conn, realm, as_json = connection_options(), _realm_option(), _json_option()
    read = [conn, realm, as_json]

    def command(
        name: str, help_text: str, *parents: argparse.ArgumentParser
    ) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_text, parents=list(parents))

    realms = command("realm", "create or list realms")
    realm_commands = realms.add_subparsers(dest="realm_command", required=True)
    p = realm_commands.add_parser("create", help="create a realm (admin)", parents=[conn, as_json])
    p.add_argument("realm_id", metavar="REALM")
    p.add_argument("--name")
    p.set_defaults(client_run=realm_create)
    p = realm_commands.add_parser(
        "list", help="the realms your key may see", parents=[conn, as_json]
    )
    p.set_defaults(client_run=realm_list)

    p = command("tree", "the realm's goal tree", conn, realm, as_json)
    p.add_argument("realm_arg", nargs="?", metavar="REALM")
    p.set_defaults(client_run=tree)

    p = command("show", "a directive with its active text (by id or key)", *read)
    p.add_argument("ref", metavar="ID")
    p.set_defaults(client_run=show)

    p = command("history", "a directive's timeline: who changed what, when, why", *read)
    p.add_argument("ref", metavar="ID")
    p.add_argument("--limit", type=int)
    p.set_defaults(client_run=history)

    p = command("versions", "a directive's versions, newest first", *read)
    p.add_argument("ref", metavar="ID")
    p.set_defaults(client_run=versions)

    p = command("diff", "the diff between two versions of a directive", *read)
    p.add_argument("ref", metavar="ID", help="the directive's id (dir_…) or key")
    p.add_argument("a", type=int, metavar="A", help="the version to diff from (see `versions`)")
    p.add_argument("b", type=int, metavar="B", help="the version to diff to")
    p.set_defaults(client_run=diff)

    p = command("create", "create a directive", conn, realm, as_json)
    p.add_argument("--level", choices=LEVELS, required=True)
    p.add_argument("--title", required=True)
    p.add_argument("--body-file", required=True, help="the body, from a file ('-': stdin)")
    p.add_argument("--parent", help="the parent's id or key")
    _attribute_flags(p)
    p.add_argument("--message", "-m")
    p.set_defaults(client_run=create)

    p = command("set", "change a directive (compare-and-swap)", conn, realm, as_json)
    p.add_argument("ref", metavar="ID")
    p.add_argument("--title")
    p.add_argument("--body-file", help="the new body, from a file ('-': stdin)")
    p.add_argument("--parent", help="move under this id or key ('-': make it a root)")
    _attribute_flags(p)
    p.add_argument("--reopen", action="store_true", help="allow a terminal node back to active")
    p.add_argument("--cascade", action="store_true", help="complete or cancel the subtree too")
    p.add_argument(
        "--draft", action="store_true", help="make the new text a version nothing serves yet"
    )
    p.add_argument("--message", "-m", help="why")
    p.add_argument("--expected-revision", type=int, help="fail unless at this revision")
    p.set_defaults(client_run=set_directive)

    p = command("rollback", "make an earlier version active again", conn, realm, as_json)
    p.add_argument("ref", metavar="ID")
    p.add_argument("version", type=int, metavar="VERSION")
    p.add_argument("--message", "-m")
    p.add_argument("--expected-revision", type=int)
    p.set_defaults(client_run=rollback)

    p = command("deactivate", "take a directive's text out of every prompt", conn, realm)
    p.add_argument("ref", metavar="ID")
    p.add_argument("--message", "-m")
    p.add_argument("--expected-revision", type=int)
    p.set_defaults(client_run=deactivate)

    p = command("agents", "agents that own directives in the realm", *read)
    p.set_defaults(client_run=agents)

    p = command("prompt", "an agent's composed prompt", *read)
    p.add_argument("agent", metavar="AGENT")
    p.add_argument("--raw", action="store_true", help="the text only")
    p.set_defaults(client_run=prompt)

    p = command("watch", "print an agent's prompt each time it changes", *read)
    p.add_argument("agent", metavar="AGENT")
    p.add_argument("--raw", action="store_true", help="the text only")
    p.set_defaults(client_run=watch)

    p = command("events", "the realm's event feed", *read)
    p.add_argument(
        "--after", type=int, help="events after this seq (default: 0, or now with --follow)"
    )
    p.add_argument("--limit", type=int)
    p.add_argument("--type", action="append", dest="types", help="only this type (repeat)")
    p.add_argument("--directive", help="only this directive's events")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    p.set_defaults(client_run=events)

    p = key_commands.add_parser(
        "list", help="API keys (admin; never their secrets)", parents=[conn, as_json]
    )
    p.set_defaults(client_run=keys_list)
    p = key_commands.add_parser("revoke", help="revoke an API key (admin)", parents=[conn])
    p.add_argument("key_id", metavar="KEY_ID")
    p.set_defaults(client_run=keys_revoke)
    key_create.add_argument(
        "--remote",
        action="store_true",
        help="create it through the API at --url, not in the database",
    )
    key_create.add_argument(
        "--create-database",
        action="store_true",
        help="make the SQLite database file if it does not exist (else: refused, exit 2)",
    )
    key_create.add_argument("--url", help="with --remote: the server")
    key_create.add_argument("--api-key", help="with --remote: an admin key")
    key_create.set_defaults(color="never")

    rollouts.add(commands, conn, realm, as_json)
    variables.add(commands, conn, realm, as_json)
    declarative.add(commands, conn, realm)
    edit.add(commands, conn, realm)
    webhooks.add(commands, conn, realm, as_json)
    work.add(commands, conn, realm, as_json)


def _attribute_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--key", dest="directive_key", metavar="KEY", help="the operator key ('-': clear it)"
    )
    p.add_argument("--status", choices=STATUSES)
    p.add_argument("--priority", choices=PRIORITIES)
    p.add_argument("--owner", help="the owning agent id ('-': none)")
    p.add_argument("--mode", choices=INJECTION_MODES, help="the injection mode")


def _read_body(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc


def _done(ctx: Context, d: m.Directive, verb: str) -> int:
    if ctx.json:
        ctx.dump(d)
    else:
        version = f"v{d.active_version}" if d.active_version else "deactivated"
        print(f"{verb} {d.id}{f' ({d.key})' if d.key else ''}: {version}, revision {d.revision}")
    return exits.OK


# realms and trees


def realm_create(ctx: Context, args: argparse.Namespace) -> int:
    realm = ctx.charter.create_realm(args.realm_id, args.name)
    if ctx.json:
        ctx.dump(realm)
    else:
        print(f"created realm {realm.id}")
    return exits.OK


def realm_list(ctx: Context, _: argparse.Namespace) -> int:
    realms = list(ctx.charter.iter_realms())
    if ctx.json:
        ctx.dump(realms)
        return exits.OK
    for realm in realms:
        print(f"{ctx.style(realm.id, 'bold')}  {realm.name}  revision {realm.revision}")
    return exits.OK


def tree(ctx: Context, _: argparse.Namespace) -> int:
    forest = ctx.charter.tree(ctx.realm())
    if ctx.json:
        ctx.dump(forest)
        return exits.OK
    print(ctx.style(f"{forest.realm_id} · revision {forest.revision}", "dim"))
    for line in _views.tree_lines(forest, ctx.style):
        print(line)
    return exits.OK


# one directive


def show(ctx: Context, args: argparse.Namespace) -> int:
    found = resolve(ctx, args.ref)
    if ctx.json:
        ctx.dump(found)
        return exits.OK
    for line in _views.directive_lines(found, ctx.style):
        print(line)
    return exits.OK


def history(ctx: Context, args: argparse.Namespace) -> int:
    found = resolve(ctx, args.ref)
    page = ctx.charter.history(found.id, limit=args.limit, realm=ctx.realm())
    if ctx.json:
        ctx.dump(page)
        return exits.OK
    for line in _views.history_lines(page, ctx.style):
        print(line)
    return exits.OK


def versions(ctx: Context, args: argparse.Namespace) -> int:
    found = resolve(ctx, args.ref)
    page = ctx.charter.versions(found.id, realm=ctx.realm())
    if ctx.json:
        ctx.dump(page)
        return exits.OK
    for v in page.items:
        mark = ctx.style("*", "green") if v.version == found.active_version else " "
        why = f" — {v.message}" if v.message else ""
        when = v.created_at.isoformat(timespec="seconds")
        print(f"{mark} v{v.version} {when} by {v.author_name or v.author}: {v.title}{why}")
    return exits.OK


def diff(ctx: Context, args: argparse.Namespace) -> int:
    found = resolve(ctx, args.ref)
    result = ctx.charter.diff(found.id, args.a, args.b, realm=ctx.realm())
    if ctx.json:
        ctx.dump(result)
    elif result.diff:
        print(ctx.style.diff(result.diff))
    return exits.OK


def create(ctx: Context, args: argparse.Namespace) -> int:
    realm = ctx.realm()
    parent = resolve(ctx, args.parent).id if args.parent else None
    new = m.NewDirective(
        level=args.level,
        title=args.title,
        body=_read_body(args.body_file),
        parent_id=parent,
        key=args.directive_key,
        status=args.status or "active",
        priority=args.priority or "normal",
        owner_agent_id=args.owner,
        injection_mode=args.mode or "system_first",
        message=args.message,
    )
    return _done(ctx, ctx.charter.create(new, realm=realm), "created")


def set_directive(ctx: Context, args: argparse.Namespace) -> int:
    current = resolve(ctx, args.ref)
    patch = m.Patch(reopen=args.reopen, cascade=args.cascade, activate=not args.draft)
    if args.draft and args.title is None and args.body_file is None:
        raise UsageError("--draft needs --title or --body-file: a draft is new text")
    if args.title is not None:
        patch.title = args.title
    if args.body_file is not None:
        patch.body = _read_body(args.body_file)
    if args.parent is not None:
        patch.parent_id = None if args.parent == "-" else resolve(ctx, args.parent).id
    if args.directive_key is not None:
        patch.key = None if args.directive_key == "-" else args.directive_key
    if args.owner is not None:
        patch.owner_agent_id = None if args.owner == "-" else args.owner
    if args.status is not None:
        patch.status = args.status
    if args.priority is not None:
        patch.priority = args.priority
    if args.mode is not None:
        patch.injection_mode = args.mode
    if args.message is not None:
        patch.message = args.message
    expected = args.expected_revision or current.revision
    try:
        updated = ctx.charter.update(
            current.id, patch, expected_revision=expected, realm=ctx.realm()
        )
    except errors.Conflict as exc:
        flag = _FLAG_FOR.get(exc.code)
        if flag is None or exc.detail is None or flag[2:] not in exc.detail:
            raise
        # The API's detail names the JSON field (`cascade: true`); here the flag is the way.
        said = exc.detail.split(";")[0].split(" (set ")[0]
        verb = {"completed": "complete", "cancelled": "cancel"}.get(args.status or "", "")
        why = f" to {verb} them too" if flag == "--cascade" and verb else ""
        print(f"charter: {exc.code}: {said}; run it again with {flag}{why}", file=sys.stderr)
        return exits.CONFLICT
    if args.draft and updated.changed and not ctx.json:
        print(
            f"drafted {updated.id}: v{updated.latest_version} (active stays "
            f"v{updated.active_version}), revision {updated.revision}"
        )
        return exits.OK
    return _done(ctx, updated, "updated" if updated.changed else "unchanged")


_FLAG_FOR = {"has-open-children": "--cascade", "invalid-transition": "--reopen"}


def rollback(ctx: Context, args: argparse.Namespace) -> int:
    current = resolve(ctx, args.ref)
    expected = args.expected_revision or current.revision
    result = ctx.charter.rollback(
        current.id,
        args.version,
        expected_revision=expected,
        message=args.message,
        realm=ctx.realm(),
    )
    return _done(ctx, result, "rolled back")


def deactivate(ctx: Context, args: argparse.Namespace) -> int:
    current = resolve(ctx, args.ref)
    expected = args.expected_revision or current.revision
    ctx.charter.deactivate(
        current.id, expected_revision=expected, message=args.message, realm=ctx.realm()
    )
    print(f"deactivated {current.id}")
    return exits.OK


# agents and prompts


def agents(ctx: Context, _: argparse.Namespace) -> int:
    page = ctx.charter.agents(limit=500, realm=ctx.realm())
    if ctx.json:
        ctx.dump(page)
        return exits.OK
    for agent in page.items:
        print(f"{ctx.style(agent.agent_id, 'magenta')}  {agent.active}/{agent.directives} active")
    return exits.OK


def _print_prompt(ctx: Context, p: m.Prompt, raw: bool) -> None:
    if ctx.json:
        sys.stdout.write(msgspec.json.encode(p).decode() + "\n")
    elif raw:
        print(p.text)
    else:
        for line in _views.prompt_lines(p, ctx.style):
            print(line)
    sys.stdout.flush()


def prompt(ctx: Context, args: argparse.Namespace) -> int:
    _print_prompt(ctx, ctx.charter.prompt(args.agent, realm=ctx.realm()), args.raw)
    return exits.OK


def watch(ctx: Context, args: argparse.Namespace) -> int:
    for index, p in enumerate(ctx.charter.watch(args.agent, realm=ctx.realm())):
        if index and not ctx.json:
            print(ctx.style("─" * 40, "dim"))
        _print_prompt(ctx, p, args.raw)
    return exits.OK


def events(ctx: Context, args: argparse.Namespace) -> int:
    realm = ctx.realm()
    if args.follow:
        for event in ctx.charter.follow_events(after=args.after, realm=realm):
            if args.types and event.type not in args.types:
                continue
            if args.directive and event.directive_id != args.directive:
                continue
            _print_event(ctx, event)
        return exits.OK
    page = ctx.charter.events(
        after=args.after or 0,
        limit=args.limit,
        types=args.types or (),
        directive_id=args.directive,
        realm=realm,
    )
    if ctx.json:
        ctx.dump(page)
        return exits.OK
    for event in page.items:
        _print_event(ctx, event)
    return exits.OK


def _print_event(ctx: Context, event: m.Event) -> None:
    if ctx.json:
        sys.stdout.write(msgspec.json.encode(event).decode() + "\n")
    else:
        print(_views.event_line(event, ctx.style))
    sys.stdout.flush()


# keys


def keys_list(ctx: Context, _: argparse.Namespace) -> int:
    page = ctx.charter.keys(limit=500)
    if ctx.json:
        ctx.dump(page)
        return exits.OK
    for key in page.items:
        revoked = ctx.style(" revoked", "red") if key.revoked_at else ""
        agent = f" agent {key.agent_id}" if key.agent_id else ""
        name = f" ({key.name})" if key.name else ""
        print(f"{key.id}  {key.role}  realms {','.join(key.realms)}{agent}{name}{revoked}")
    return exits.OK


def keys_revoke(ctx: Context, args: argparse.Namespace) -> int:
    ctx.charter.revoke_key(args.key_id)
    print(f"revoked {args.key_id}")
    return exits.OK


def keys_create_remote(ctx: Context, args: argparse.Namespace) -> int:
    created = ctx.charter.create_key(
        args.role, args.realm or ["*"], agent_id=args.agent_id, name=args.name
    )
    print(
        f"created {created.role} key {created.id}; the secret is shown this once:", file=sys.stderr
    )
    print(created.key)
    return exits.OK
