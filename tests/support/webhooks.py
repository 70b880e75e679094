"""Webhooks in in-process tests: the shared app runs no delivery loop (tests/conftest.py), so
tests run its deliverer's passes themselves, on the loop the app runs on."""

from __future__ import annotations

import asyncio

from litestar import Litestar
from litestar.testing import AsyncTestClient

from charter.services.deliveries import Deliverer

PUBLIC_URL = "https://93.184.215.14/hooks"  # a global address: nothing is ever sent to it


def deliverer(client: AsyncTestClient[Litestar]) -> Deliverer:
    found = client.app.state.runtime.deliverer
    assert isinstance(found, Deliverer)
    return found


async def _pass(found: Deliverer) -> None:
    await asyncio.gather(*await found.sweep())


async def deliver(client: AsyncTestClient[Litestar]) -> None:
    """One delivery pass of the app's deliverer, to its end."""
    future = client.blocking_portal.start_task_soon(_pass, deliverer(client))
    await asyncio.wait_for(asyncio.wrap_future(future), 30)
