"""What every client-side command shares: its context, its errors, its common options."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from charter.cli._style import Style
from charter.client import Charter
from charter.client import models as m

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


def an(word: str) -> str:
    """The word with its indefinite article: "an agent", "a team"."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


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


def resolve(ctx: Context, ref: str) -> m.Directive:
    """A directive by id (`dir_…`) or by operator key."""
    realm = ctx.realm()
    if ref.startswith("dir_"):
        return ctx.charter.get(ref, realm=realm)
    found = ctx.charter.find(ref, realm=realm)
    if found is None:
        raise UnknownKey(f"no directive has the key {ref!r} in {realm}")
    return found
