"""`charter webhooks add|list|rm|deliveries|retry`: a realm's webhooks through the client."""

from __future__ import annotations

import argparse
import sys
from typing import TypeAlias

from charter.cli import exits
from charter.cli._context import Context
from charter.client import models as m

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add(
    commands: Subparsers,
    conn: argparse.ArgumentParser,
    realm: argparse.ArgumentParser,
    as_json: argparse.ArgumentParser,
) -> None:
    group = commands.add_parser("webhooks", help="signed deliveries of the realm's events")
    sub = group.add_subparsers(dest="webhooks_command", required=True)
    p = sub.add_parser(
        "add",
        help="subscribe a URL; prints its signing secret once",
        parents=[conn, realm, as_json],
    )
    p.add_argument("target", metavar="URL")  # `--url` is the server
    p.add_argument(
        "--event",
        action="append",
        dest="events",
        help="only this event type (repeat; default: all)",
    )
    p.add_argument(
        "--agent", action="append", dest="agents", help="only events affecting this agent (repeat)"
    )
    p.set_defaults(client_run=webhooks_add)
    p = sub.add_parser(
        "list", help="the realm's webhooks and how far each got", parents=[conn, realm, as_json]
    )
    p.set_defaults(client_run=webhooks_list)
    p = sub.add_parser("rm", help="delete a webhook and its delivery log", parents=[conn, realm])
    p.add_argument("webhook_id", metavar="WEBHOOK_ID")
    p.set_defaults(client_run=webhooks_rm)
    p = sub.add_parser(
        "deliveries",
        help="a webhook's delivery attempts, newest first",
        parents=[conn, realm, as_json],
    )
    p.add_argument("webhook_id", metavar="WEBHOOK_ID")
    p.add_argument("--limit", type=int)
    p.set_defaults(client_run=webhooks_deliveries)
    p = sub.add_parser(
        "retry", help="send one delivery's event again now", parents=[conn, realm, as_json]
    )
    p.add_argument("webhook_id", metavar="WEBHOOK_ID")
    p.add_argument("delivery_id", metavar="DELIVERY_ID")
    p.set_defaults(client_run=webhooks_retry)


def _line(hook: m.Webhook) -> str:
    agents = f" agents {','.join(hook.agents)}" if hook.agents else ""
    failing = f" failing x{hook.failures}" if hook.failures else ""
    return (
        f"{hook.id}  {hook.state}  {hook.url}  events {','.join(hook.events)}{agents}"
        f"  delivered to {hook.delivered_seq}{failing}"
    )


def _attempt(a: m.Delivery) -> str:
    outcome = str(a.status_code) if a.status_code is not None else (a.error or "failed")
    manual = " (retry)" if a.manual else ""
    return (
        f"{a.id}  seq {a.seq}  {a.event_type}  attempt {a.attempt}{manual}  {outcome}"
        f"  {a.latency_ms:.1f} ms  {a.attempted_at.isoformat()}"
    )


def webhooks_add(ctx: Context, args: argparse.Namespace) -> int:
    created = ctx.charter.create_webhook(
        args.target, args.events or ("*",), agents=args.agents, realm=ctx.realm()
    )
    if ctx.json:
        ctx.dump(created)
        return exits.OK
    print(f"created {created.id}; its signing secret is shown this once:", file=sys.stderr)
    print(created.secret)
    return exits.OK


def webhooks_list(ctx: Context, _: argparse.Namespace) -> int:
    page = ctx.charter.webhooks(limit=500, realm=ctx.realm())
    if ctx.json:
        ctx.dump(page)
        return exits.OK
    for hook in page.items:
        print(_line(hook))
    return exits.OK


def webhooks_rm(ctx: Context, args: argparse.Namespace) -> int:
    ctx.charter.delete_webhook(args.webhook_id, realm=ctx.realm())
    print(f"deleted {args.webhook_id}")
    return exits.OK


def webhooks_deliveries(ctx: Context, args: argparse.Namespace) -> int:
    page = ctx.charter.deliveries(args.webhook_id, limit=args.limit, realm=ctx.realm())
    if ctx.json:
        ctx.dump(page)
        return exits.OK
    for attempt in page.items:
        print(_attempt(attempt))
    return exits.OK


def webhooks_retry(ctx: Context, args: argparse.Namespace) -> int:
    attempt = ctx.charter.retry_delivery(args.webhook_id, args.delivery_id, realm=ctx.realm())
    if ctx.json:
        ctx.dump(attempt)
    else:
        print(_attempt(attempt))
    # The retry was sent; the receiver's refusal of it is the command's failure.
    delivered = attempt.status_code is not None and 200 <= attempt.status_code < 300
    return exits.OK if delivered else exits.ERROR
