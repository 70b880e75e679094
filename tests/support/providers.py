"""A stand-in for the OpenAI and Anthropic APIs on loopback that refuses any invalid request.

Each request body is checked against the provider SDK's own request type (the TypedDict its
`create` takes), strictly: every required key present, no key the type does not name, every
value of its declared type, Literal tags exact. pydantic's TypeAdapter would not do: it checks
the SDKs' `Iterable[...]` fields lazily, so a bad message inside one passes. The SDK client
itself is what sends: `openai.AsyncOpenAI(base_url=endpoint.openai_url)` and
`anthropic.AsyncAnthropic(base_url=endpoint.anthropic_url)`.
"""

from __future__ import annotations

import collections.abc
import json
import threading
import types
import typing
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, NotRequired, Required, Union, get_args, get_origin

from anthropic.types import message_create_params
from openai.types.chat import completion_create_params
from openai.types.responses import response_create_params
from pydantic import BaseModel
from typing_extensions import is_typeddict

# path -> (the SDK's request type, a minimal answer its client accepts)
_ROUTES: dict[str, tuple[Any, dict[str, Any]]] = {
    "/v1/chat/completions": (
        completion_create_params.CompletionCreateParamsNonStreaming,
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "ok"},
                }
            ],
        },
    ),
    "/v1/responses": (
        response_create_params.ResponseCreateParamsNonStreaming,
        {"id": "resp_1", "object": "response", "created_at": 0, "model": "m", "output": []},
    ),
    "/v1/messages": (
        message_create_params.MessageCreateParamsNonStreaming,
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "m",
            "content": [{"type": "text", "text": "ok"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 1, "output_tokens": 1},
        },
    ),
}


class Invalid(Exception):
    """A value that is not of its declared type; the message says where."""


def check(value: Any, hint: Any, where: str = "$") -> None:
    """Raise Invalid unless `value` (decoded JSON) is a valid `hint`."""
    origin = get_origin(hint)
    if origin is typing.Annotated or origin in (Required, NotRequired):
        check(value, get_args(hint)[0], where)
    elif hint is Any or hint is object:
        return
    elif hasattr(hint, "__value__"):  # a `type X = …` alias
        check(value, hint.__value__, where)
    elif origin is Literal:
        if value not in get_args(hint) or isinstance(value, bool) != any(
            isinstance(a, bool) for a in get_args(hint) if a == value
        ):
            raise Invalid(f"{where}: {value!r} is not one of {get_args(hint)}")
    elif origin in (Union, types.UnionType):
        _one_of(value, get_args(hint), where)
    elif hint is type(None):
        if value is not None:
            raise Invalid(f"{where}: expected null")
    elif is_typeddict(hint):
        _typed_dict(value, hint, where)
    elif hint is str:
        _is(value, str, where)
    elif hint is bool:
        _is(value, bool, where)
    elif hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"{where}: expected an integer")
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Invalid(f"{where}: expected a number")
    elif origin in (dict, collections.abc.Mapping) or hint is dict:
        _is(value, dict, where)
        args = get_args(hint)
        for key, item in value.items():
            check(item, args[1] if args else Any, f"{where}.{key}")
    elif _is_sequence(origin):
        _is(value, list, where)
        (item_hint,) = get_args(hint) or (Any,)
        for at, item in enumerate(value):
            check(item, item_hint, f"{where}[{at}]")
    elif isinstance(hint, type) and issubclass(hint, BaseModel):
        # The SDKs also take their response objects here; JSON on the wire never is one.
        raise Invalid(f"{where}: {hint.__name__} is an SDK object, not a request value")
    else:
        raise Invalid(f"{where}: no rule for {hint!r}")  # a type this checker does not know


def _is(value: Any, kind: type, where: str) -> None:
    if not isinstance(value, kind):
        raise Invalid(f"{where}: expected {kind.__name__}, got {type(value).__name__}")


def _is_sequence(origin: Any) -> bool:
    if origin is None:
        return False
    if getattr(origin, "__name__", "") == "SequenceNotStr":
        return True
    return isinstance(origin, type) and issubclass(origin, collections.abc.Iterable)


def _one_of(value: Any, options: tuple[Any, ...], where: str) -> None:
    failures: list[str] = []
    for option in options:
        try:
            check(value, option, where)
        except Invalid as exc:
            failures.append(str(exc))
        else:
            return
    # The deepest failure is the likeliest meant branch: it says the most.
    raise Invalid(max(failures, key=lambda f: f.count(".") + f.count("[")))


@cache
def _fields(hint: Any) -> tuple[dict[str, Any], frozenset[str]]:
    """A TypedDict's wire keys -> hints (aliases applied), and the required ones."""
    hints = typing.get_type_hints(hint, include_extras=True)
    fields: dict[str, Any] = {}
    required: set[str] = set()
    for name, field_hint in hints.items():
        wire = name
        if get_origin(field_hint) is typing.Annotated:
            for meta in field_hint.__metadata__:
                alias = getattr(meta, "alias", None)
                if isinstance(alias, str):
                    wire = alias
        fields[wire] = field_hint
        if name in hint.__required_keys__:
            required.add(wire)
    return fields, frozenset(required)


def _typed_dict(value: Any, hint: Any, where: str) -> None:
    _is(value, dict, where)
    fields, required = _fields(hint)
    missing = required - value.keys()
    if missing:
        raise Invalid(f"{where}: {hint.__name__} needs {sorted(missing)}")
    unknown = value.keys() - fields.keys()
    if unknown:
        raise Invalid(f"{where}: {hint.__name__} has no {sorted(unknown)}")
    for key, item in value.items():
        check(item, fields[key], f"{where}.{key}")


class ProviderEndpoint:
    """The stand-in, in a thread of its own; `received` holds every valid body, in order."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.refused: list[str] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                route = _ROUTES.get(self.path)
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"null")
                if route is None:
                    self._answer(404, {"error": {"message": f"no route {self.path}"}})
                    return
                request_type, answer = route
                try:
                    check(body, request_type)
                except Invalid as exc:
                    endpoint.refused.append(str(exc))
                    self._answer(400, {"type": "error", "error": {"message": str(exc)}})
                    return
                endpoint.received.append((self.path, body))
                self._answer(200, answer)

            def _answer(self, status: int, document: dict[str, Any]) -> None:
                data = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_url(self) -> str:
        return f"{self.url}/v1"

    def __enter__(self) -> ProviderEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
