"""The client-side half of the `charter` command: it talks to a server through the client.

`charter.__main__` owns the server-side commands (serve, migrate, keys create) and hands
its parser to `register`, then its parsed arguments to `dispatch`.
"""

from __future__ import annotations

import argparse
import os
import sys

import stamina.instrumentation

from charter.cli import commands as client_commands
from charter.cli import exits
from charter.cli._context import (
    Context,
    Handler,
    InvalidFile,
    UnknownKey,
    UsageError,
    connection_options,
    json_option,
    realm_option,
)
from charter.cli._style import Style
from charter.client import Charter, errors

__all__ = [
    "Context",
    "Handler",
    "InvalidFile",
    "UnknownKey",
    "UsageError",
    "connection_options",
    "dispatch",
    "json_option",
    "realm_option",
    "register",
    "run",
]


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    key_commands: argparse._SubParsersAction[argparse.ArgumentParser],
    key_create: argparse.ArgumentParser,
) -> None:
    """Add the client-side commands to the `charter` parser."""
    client_commands.add(commands, key_commands, key_create)


def dispatch(args: argparse.Namespace) -> int | None:
    """Run a client-side command; None if `args` names a server-side one."""
    handler: Handler | None = getattr(args, "client_run", None)
    if getattr(args, "remote", False):
        handler = client_commands.keys_create_remote
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
