"""The CLI's exit codes: stable, one per problem class (docs/cli.md lists them)."""

from __future__ import annotations

from charter.client import errors

OK = 0
ERROR = 1  # anything unexpected
USAGE = 2  # bad arguments (argparse), or a server-side command that refused to run
NOT_FOUND = 3  # not-found
CONFLICT = 4  # stale-revision, already-exists, cycle-detected, invalid-transition, …
INVALID = 5  # invalid-request, invalid-hierarchy, content-too-large, a bad tree file, …
AUTH = 6  # unauthenticated, forbidden, or no key given
UNAVAILABLE = 7  # the server could not be reached, or answered 503/429/5xx after retries
INTERRUPTED = 130  # Ctrl-C


def for_error(exc: errors.CharterError) -> int:
    if isinstance(exc, errors.NotFound):
        return NOT_FOUND
    if isinstance(exc, errors.Conflict):
        return CONFLICT
    if isinstance(exc, errors.InvalidInput):
        return INVALID
    if isinstance(exc, errors.AuthError):
        return AUTH
    if isinstance(exc, errors.TransportError | errors.Unavailable):
        return UNAVAILABLE
    return ERROR
