"""Request plumbing shared by controllers: ids, preconditions, cursors and limits."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any, TypeVar

import msgspec
from litestar.params import HeaderParameter, PathParameter, QueryParameter
from msgspec import UNSET, UnsetType

from charter.api.wire import AGENT_ID_PATTERN, REALM_ID_PATTERN
from charter.errors import InvalidRequest, PreconditionRequired

__all__ = ["InvalidRequest"]
from charter.ids import SUFFIX, is_directive_id
from charter.services.writes import Expected


def _path_id(pattern: str, description: str) -> PathParameter:
    # Documented only (`schema_extra`): the handlers check ids themselves, with their own words.
    return PathParameter(description=description, schema_extra={"pattern": pattern})


MAX_LIMIT = 500
DEFAULT_LIMIT = 100
_END = r"$(?!\n)"  # as in wire.py: `$` alone would let a final newline through
_DIRECTIVE_ID = f"^dir_{SUFFIX}{_END}"
RealmPath = Annotated[str, _path_id(REALM_ID_PATTERN, "a realm id (a slug)")]
DirectivePath = Annotated[str, _path_id(_DIRECTIVE_ID, "a directive id")]
AgentPath = Annotated[str, _path_id(AGENT_ID_PATTERN, "an agent id")]
CompositionPath = Annotated[str, _path_id(f"^cmp_[0-9a-f]{{64}}{_END}", "a composition id")]
KeyPath = Annotated[str, _path_id(f"^key_{SUFFIX}{_END}", "an API key id")]
DirectiveQuery = Annotated[str | None, QueryParameter(schema_extra={"pattern": _DIRECTIVE_ID})]
Limit = Annotated[
    int | None,
    QueryParameter(description="page size", schema_extra={"minimum": 1, "maximum": MAX_LIMIT}),
]
IfMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        required=False,
        description='the expected revision, as its ETag: "3"',
        schema_extra={"pattern": r'^(W/)?"\d{1,18}"$|^\d{1,18}$'},
    ),
]

_REALM_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_ETAG = re.compile(r'(?:W/)?"(\d{1,18})"|(\d{1,18})')
T = TypeVar("T")


def is_realm_id(value: str) -> bool:
    return _REALM_ID.fullmatch(value) is not None


def realm_id(value: str) -> str:
    if not is_realm_id(value):
        raise InvalidRequest("realm ids are slugs: [a-z0-9][a-z0-9-]{0,62}")
    return value


def directive_id(value: str) -> str:
    if not is_directive_id(value):
        raise InvalidRequest("directive ids look like dir_ followed by 26 base32 characters")
    return value


def expected_revision(if_match: str | None, in_body: int | UnsetType = UNSET) -> Expected:
    """The CAS token, from `If-Match` or the body; both must agree; one is required."""
    header: int | None = None
    if if_match is not None:
        match = _ETAG.fullmatch(if_match.strip())
        if match is None:
            raise InvalidRequest('If-Match must be a revision ETag such as "3"')
        header = int(match.group(1) or match.group(2))
    if header is not None and in_body is not UNSET and header != in_body:
        raise InvalidRequest("If-Match and expected_revision disagree")
    if header is not None:
        return Expected(header, via_header=True)
    if in_body is not UNSET:
        return Expected(in_body, via_header=False)
    raise PreconditionRequired(
        'this write needs the expected revision: an If-Match: "<revision>" header '
        "or expected_revision in the body"
    )


def limit(value: int | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not 1 <= value <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be between 1 and {MAX_LIMIT}")
    return value


def encode_cursor(value: str | int) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest("cursor is not one this server issued") from exc
    if not raw or not raw.isprintable():
        raise InvalidRequest("cursor is not one this server issued")
    return raw


def decode_int_cursor(cursor: str | None) -> int | None:
    raw = decode_cursor(cursor)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:  # "²".isdigit(), int("²") fails
        raise InvalidRequest("cursor is not one this server issued")
    return int(raw)


def decode_body(raw: bytes, kind: type[T]) -> T:
    """Decode an optional JSON body by hand (for DELETE, where frameworks expect none)."""
    try:
        return msgspec.json.decode(raw or b"{}", type=kind)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise InvalidRequest(without_values(str(exc))) from exc


def strict_body(parsed: Any, kind: type[T]) -> T:
    """Re-check a JSON body Litestar has converted: its conversion is lax ("3" passes for 3)."""
    try:
        return msgspec.convert(parsed, type=kind, strict=True)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(without_values(str(exc))) from exc


_ENUM = "Invalid enum value"


def without_values(message: str) -> str:
    """msgspec's message without the value it quotes for a bad enum: that may be any text."""
    if not message.startswith(_ENUM):
        return message
    _, at, path = message.rpartition(" - at `")
    return f"{_ENUM} - at `{path}" if at else _ENUM
