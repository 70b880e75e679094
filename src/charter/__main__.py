"""The `charter` command: the server (serve, migrate, backup, keys create) and a client of its
API (tree, show, set, edit, apply, export, prompt, watch, events, …)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import metadata
from types import ModuleType
from typing import Any

from charter.cli import dispatch, register
from charter.client.vocabulary import ROLES

# The server side's dependencies (granian, SQLAlchemy, Litestar, …) are the `server` extra,
# so this is the one place they are imported, lazily and guarded.
SERVER_EXTRA_HINT = "pip install 'charter[server]'"
# `charter mcp` needs the MCP SDK: the `mcp` extra (the `server` extra has it too).
MCP_EXTRA_HINT = "pip install 'charter[mcp]'"


def version() -> str:
    """The installed distribution's version (its metadata: one source, pyproject.toml)."""
    try:
        return metadata.version("charter")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _server() -> ModuleType:
    """The server-side commands, imported only when one of them runs.

    With `_mcp`, the only imports inside a function in the CLI, on purpose: the client-side
    commands must work where only the client is installed, and `charter serve` there must say
    how to get the rest rather than fail with a traceback.
    """
    try:
        from charter import server_cli
    except ImportError as exc:
        missing = f"the server is not installed here ({exc.name} is missing)"
        raise SystemExit(f"charter: {missing}; {SERVER_EXTRA_HINT}") from exc
    return server_cli


def _mcp() -> ModuleType:
    """The stdio MCP server, imported only when `charter mcp` runs (as `_server` is)."""
    try:
        from charter.mcp import stdio
    except ImportError as exc:
        missing = f"the MCP SDK is not installed here ({exc.name} is missing)"
        raise SystemExit(f"charter: {missing}; {MCP_EXTRA_HINT}") from exc
    return stdio


class _Parser(argparse.ArgumentParser):
    """No abbreviated options: `--body` must not be taken for `--body-file`. Subcommands'
    parsers are made of the same class, so the rule holds for every one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = _Parser(prog="charter", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP API")
    serve.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on (default: %(default)s)"
    )
    serve.add_argument("--port", type=int, default=8000, help="the port (default: %(default)s)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (default: %(default)s); more than one needs Redis",
    )
    serve.add_argument(
        "--access-log", action="store_true", help="log every request line (default: off)"
    )
    serve.set_defaults(server_command="serve")

    migrate = commands.add_parser("migrate", help="migrate the schema (as its owner)")
    migrate.set_defaults(server_command="migrate")

    backup = commands.add_parser(
        "backup", help="copy the embedded SQLite database while the server runs"
    )
    backup.add_argument("path", metavar="PATH", help="the file to write the copy to")
    backup.add_argument("--force", action="store_true", help="replace PATH if it exists")
    backup.set_defaults(server_command="backup")

    keys = commands.add_parser("keys", help="API keys: create (in the database), list, revoke")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="mint a key and print its secret once")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--realm", action="append", help="a realm it may use (repeat); default *")
    create.add_argument("--agent-id", help="the agent an agent key stands for")
    create.add_argument("--name", help="who or what holds it")
    create.set_defaults(server_command="keys_create")

    mcp = commands.add_parser(
        "mcp", help="an MCP server over stdio for one agent (Claude Desktop, any MCP client)"
    )
    mcp.add_argument("--realm", help="the realm (default: $CHARTER_REALM)")
    mcp.add_argument("--agent", required=True, help="the agent whose directives it serves")
    mcp.add_argument("--url", help="the server (default: $CHARTER_URL or http://127.0.0.1:8000)")
    mcp.add_argument("--api-key", help="the API key (default: $CHARTER_KEY)")
    mcp.set_defaults(mcp=True)

    register(commands, key_commands, create)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "mcp", False):
        code_: int = _mcp().run(args.url, args.api_key, args.realm, args.agent)
        return code_
    client_code = dispatch(args)
    if client_code is not None:
        return client_code
    code: int = _server().run(args.server_command, args)
    return code


if __name__ == "__main__":
    sys.exit(main())
