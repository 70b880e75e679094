"""The client-side half of the `charter` command: it talks to a server through the client.

`charter.__main__` owns the server-side commands (serve, migrate, keys create) and hands
its parser to `register`, then its parsed arguments to `dispatch`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import msgspec
import stamina.instrumentation

from charter.cli import exits
from charter.cli._style import Style
from charter.client import Charter, errors

Handler = Callable[["Context", argparse.Namespace], int]


@dataclass
class Context:
    """What every client-side command gets: a client, output style, and the chosen realm."""

    charter: Charter
    style: Style
    json: bool
    realm_flag: str | None  # --realm, or the command's positional realm

    def realm(self, fallback: str | None = None) -> str:
        realm = self.realm_flag or fallback or os.environ.get("CHARTER_REALM")
        if not realm:
            raise UsageError("no realm: pass --realm or set CHARTER_REALM")
        return realm

    def dump(self, value: object) -> None:
        """--json output: the value as the API shows it, one document."""
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(value)).decode() + "\n")


class UsageError(Exception):
    """A command that cannot run as asked; exit code 2."""


class UnknownKey(Exception):
    """An operator key that names no directive of the realm; exit code 3, as a 404 would."""


class InvalidFile(Exception):
    """A tree file that cannot be applied as it stands; exit code 5."""


def connection_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection")
    group.add_argument("--url", help="the server (default: $CHARTER_URL or http://127.0.0.1:8000)")
    group.add_argument("--api-key", help="the API key (default: $CHARTER_KEY)")
    group.add_argument(
        "--color", choices=["auto", "always", "never"], default="auto", help="colour output"
    )
    return parent


def realm_option() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--realm", help="the realm (default: $CHARTER_REALM)")
    return parent


def json_option() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true", help="print JSON, for scripts")
    return parent


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    key_commands: argparse._SubParsersAction[argparse.ArgumentParser],
    key_create: argparse.ArgumentParser,
) -> None:
    """Add the client-side commands to the `charter` parser."""
    from charter.cli import commands as client_commands

    client_commands.add(commands, key_commands, key_create)


def dispatch(args: argparse.Namespace) -> int | None:
    """Run a client-side command; None if `args` names a server-side one."""
    handler: Handler | None = getattr(args, "client_run", None)
    if getattr(args, "remote", False):
        from charter.cli.commands import keys_create_remote

        handler = keys_create_remote
    if handler is None:
        return None
    return run(handler, args)


def run(handler: Handler, args: argparse.Namespace) -> int:
    url = args.url or os.environ.get("CHARTER_URL") or "http://127.0.0.1:8000"
    key = args.api_key or os.environ.get("CHARTER_KEY") or None
    style = Style.for_stream(getattr(args, "color", "auto"))
    realm = getattr(args, "realm_arg", None) or getattr(args, "realm", None)
    realm = realm if isinstance(realm, str) else None  # `keys create --realm` is a list
    # The client's retries are silent here: a failure that outlasts them is reported once.
    stamina.instrumentation.set_on_retry_hooks(())
    try:
        with Charter(url, key) as charter:
            context = Context(charter, style, bool(getattr(args, "json", False)), realm)
            return handler(context, args)
    except errors.ProblemError as exc:
        print(f"charter: {exc.code}: {exc.detail or exc.problem.title}", file=sys.stderr)
        return exits.for_error(exc)
    except errors.TransportError as exc:
        print(f"charter: cannot reach {url}: {exc}", file=sys.stderr)
        return exits.UNAVAILABLE
    except UsageError as exc:
        print(f"charter: {exc}", file=sys.stderr)
        return exits.USAGE
    except UnknownKey as exc:
        print(f"charter: not-found: {exc}", file=sys.stderr)
        return exits.NOT_FOUND
    except InvalidFile as exc:
        print(f"charter: {exc}", file=sys.stderr)
        return exits.INVALID
    except KeyboardInterrupt:
        return exits.INTERRUPTED
    except BrokenPipeError:
        return exits.OK  # `charter export | head`
