"""Server-sent events, framed once: the bytes of an event are made once and sent to every
stream that carries it.

The framing is Litestar's `ServerSentEventMessage` (fields in its order, CRLF line ends), so
the wire format is the one the streams always had (DESIGN §2 Representations).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from litestar.response import Stream

from charter.cache.watch import Ending

PING = b": ping\r\n\r\n"
# Sent when the process stops: reconnect after this many milliseconds (to another process).
RETRY_MILLISECONDS = 1000

_HEADERS = {"Cache-Control": "no-cache", "Connection": "keep-alive", "X-Accel-Buffering": "no"}


def frame(event: str, event_id: str, data: bytes) -> bytes:
    """One event; `data` is one line of JSON (JSON escapes every line break)."""
    return b"".join(
        (
            b"id: ",
            event_id.encode(),
            b"\r\nevent: ",
            event.encode(),
            b"\r\ndata: ",
            data,
            b"\r\n\r\n",
        )
    )


def ending(why: Ending) -> bytes:
    """The last frame of a stream ended by the server."""
    if why is Ending.SHUTDOWN:
        return b": server stopping\r\nretry: %d\r\n\r\n" % RETRY_MILLISECONDS
    if why is Ending.SESSION_ENDED:
        return b": session ended\r\n\r\n"
    return b": key revoked\r\n\r\n"


def response(frames: AsyncIterator[bytes]) -> Stream:
    return Stream(frames, media_type="text/event-stream", headers=dict(_HEADERS))
