"""Sending one webhook delivery: resolve, refuse what the SSRF guard refuses, sign, POST.

The host is resolved here, at every delivery, and the request goes to the very address that
was checked (the URL's host stays in `Host` and in TLS's SNI and certificate check), so a DNS
answer that changes between the check and the connection (rebinding) cannot slip through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from charter.domain import webhooks as rules
from charter.errors import TargetRefused

USER_AGENT = "charter-webhooks"


@dataclass(frozen=True, slots=True)
class Outcome:
    status_code: int | None
    error: str | None  # why there is no 2xx answer: the refusal or the error's class
    latency_ms: float

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def resolve(host: str, port: int) -> list[rules.Address]:
    """The addresses `host` resolves to (itself, if it is an address)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:  # UnicodeError: a name IDNA cannot encode (a..b)
        raise TargetRefused(f"the webhook host does not resolve ({type(exc).__name__})") from exc
    found: list[rules.Address] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if address not in found:
            found.append(address)
    if not found:
        raise TargetRefused("the webhook host resolves to no address")
    return found


async def checked(url: str, allow_private: bool) -> rules.Address:
    """The address to send `url`'s requests to: every address its host resolves to must be
    one webhooks may reach (unless private ones are allowed), else TargetRefused."""
    _, host, port = rules.target(url)
    addresses = await resolve(host, port)
    if not allow_private:
        for address in addresses:
            why = rules.refusal(address)
            if why is not None:
                raise TargetRefused(f"the webhook host resolves to a {why} address")
    return addresses[0]


class Sender:
    def __init__(self, allow_private: bool, timeout: float) -> None:
        self.allow_private = allow_private
        self.timeout = timeout
        self._client = httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, trust_env=False, verify=True
        )

    async def send(self, url: str, secret: str, message_id: str, body: bytes) -> Outcome:
        """POST `body`, signed; never raises for the receiver's or the network's failures."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                address = await checked(url, self.allow_private)
                status = await self._post(url, address, secret, message_id, body)
        except TargetRefused as exc:
            return Outcome(None, f"target-refused: {exc}"[:64], _since(started))
        except TimeoutError:
            return Outcome(None, "timeout", _since(started))
        except (httpx.HTTPError, OSError) as exc:
            return Outcome(None, type(exc).__name__[:64], _since(started))
        return Outcome(status, None if 200 <= status < 300 else "status", _since(started))

    async def _post(
        self, url: str, address: rules.Address, secret: str, message_id: str, body: bytes
    ) -> int:
        parts = urlsplit(url)
        host = f"[{address}]" if address.version == 6 else str(address)
        port = f":{parts.port}" if parts.port is not None else ""
        pinned = urlunsplit((parts.scheme, host + port, parts.path or "/", parts.query, ""))
        timestamp = int(time.time())
        headers = {
            "host": parts.netloc,
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": rules.sign(secret, message_id, timestamp, body),
        }
        extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
        request = self._client.build_request(
            "POST", pinned, content=body, headers=headers, extensions=extensions
        )
        response = await self._client.send(request, stream=True)
        await response.aclose()  # the answer's body is not read: only its status counts
        return response.status_code

    async def close(self) -> None:
        await self._client.aclose()


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
