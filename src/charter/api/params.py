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
WebhookPath = Annotated[str, _path_id(f"^whk_{SUFFIX}{_END}", "a webhook id")]
DeliveryPath = Annotated[str, _path_id(f"^dlv_{SUFFIX}{_END}", "a delivery attempt id")]
DirectiveQuery = Annotated[str | None, QueryParameter(schema_extra={"pattern": _DIRECTIVE_ID})]


def number_query(low: int, high: int | None, description: str | None = None, **kw: Any) -> Any:
    """A numeric query parameter, taken as text and read by `number` (documented as integer)."""
    # Without `oneOf: None`, an optional one would keep Litestar's `oneOf: [string, null]`.
    schema: dict[str, Any] = {"type": "integer", "oneOf": None, "minimum": low}
    if high is not None:
        schema["maximum"] = high
    return QueryParameter(description=description, schema_extra=schema, **kw)


Limit = Annotated[str | None, number_query(1, MAX_LIMIT, "page size")]
VersionPath = Annotated[
    str,
    PathParameter(description="a version number", schema_extra={"type": "integer", "minimum": 0}),
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
_ETAG = re.compile(r'(?:W/)?"([0-9]{1,18})"|([0-9]{1,18})')  # ASCII digits only
NEVER_MATCHES = 0  # revisions start at 1
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
    weak = False
    if if_match is not None:
        match = _ETAG.fullmatch(if_match.strip())
        if match is None:
            raise InvalidRequest('If-Match must be a revision ETag such as "3"')
        # If-Match compares strongly (RFC 9110 §13.1.1): a weak tag never matches, so the
        # write is refused as stale (412, with the current ETag) whatever revision it names.
        weak = match.group(0).startswith("W/")
        header = int(match.group(1) or match.group(2))
    if header is not None and in_body is not UNSET and header != in_body:
        raise InvalidRequest("If-Match and expected_revision disagree")
    if header is not None:
        return Expected(NEVER_MATCHES if weak else header, via_header=True)
    if in_body is not UNSET:
        return Expected(in_body, via_header=False)
    raise PreconditionRequired(
        'this write needs the expected revision: an If-Match: "<revision>" header '
        "or expected_revision in the body"
    )


# Plain ASCII digits, no sign, space or leading zero: int() would also take " 1", "+1", "01",
# "1_0" and "\u0661" (an Arabic-Indic one), and Litestar's conversion takes "1e3" as well.
# At most 100 digits: larger is not a number anything could name (and int() of a long string
# is slow).
_NUMBER = re.compile(r"0|[1-9][0-9]{0,99}")


def number(value: str, name: str, low: int = 0, high: int | None = None) -> int:
    """A path or query number: plain ASCII digits, at least `low` and (if given) at most
    `high`. Without `high`, a number past what the store holds is its 404, not a 400."""
    if _NUMBER.fullmatch(value) is None:
        raise InvalidRequest(f"{name} must be a number in plain digits (no sign or leading zero)")
    parsed = int(value)
    if parsed < low or (high is not None and parsed > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise InvalidRequest(f"{name} must be {bound}")
    return parsed


def limit(value: str | None) -> int:
    return DEFAULT_LIMIT if value is None else number(value, "limit", 1, MAX_LIMIT)


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


# msgspec names a pattern as written, anchors and the newline guard included (wire._END):
# `matching regex '^[a-z0-9][a-z0-9-]{0,62}$(?!\\n)'` reads as `matching [a-z0-9][a-z0-9-]{0,62}`.
_REGEX = re.compile(r"matching regex '\^(.*?)\$(?:\(\?!\\\\n\))?'")
_NO_NUL = r"[^\\x00]*"  # as msgspec quotes it


def _pattern(found: re.Match[str]) -> str:
    return "with no NUL character" if found.group(1) == _NO_NUL else f"matching {found.group(1)}"


def without_values(message: str) -> str:
    """msgspec's message for people: a pattern without its anchors, and no value it quotes for
    a bad enum (that may be any text)."""
    message = _REGEX.sub(_pattern, message)
    if not message.startswith(_ENUM):
        return message
    _, at, path = message.rpartition(" - at `")
    return f"{_ENUM} - at `{path}" if at else _ENUM
