"""The SSRF guard at delivery time: the sender resolves the host again at every delivery and
refuses what the guard refuses, whatever was checked when the webhook was made (a DNS answer
that changed since then, or a webhook made by a process that allowed private targets)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from charter.domain import webhooks as rules
from charter.services.sender import Sender
from tests.support.receiver import Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as running:
        running.secret = rules.new_secret()
        yield running


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_private_target_is_refused_when_it_is_delivered_to(
    receiver: Receiver, host: str
) -> None:
    sender = Sender(allow_private=False, timeout=2)
    try:
        url = f"http://{host}:{receiver.port}/hook"
        outcome = await sender.send(url, receiver.secret or "", "msg_x_1", b'{"seq": 1}')
    finally:
        await sender.close()
    assert not outcome.ok
    assert outcome.status_code is None
    assert outcome.error is not None
    assert outcome.error.startswith("target-refused")
    assert "loopback" in outcome.error
    assert receiver.requests == 0


async def test_allowed_it_is_sent_to_the_address_that_was_checked(receiver: Receiver) -> None:
    sender = Sender(allow_private=True, timeout=2)
    try:
        url = f"http://localhost:{receiver.port}/hook?x=1"
        outcome = await sender.send(url, receiver.secret or "", "msg_x_1", b'{"seq": 1}')
    finally:
        await sender.close()
    assert outcome.ok, outcome
    [got] = await receiver.wait_for(1)
    assert got.headers["host"] == f"localhost:{receiver.port}"  # the URL's host, not the IP
    assert got.message_id == "msg_x_1"


async def test_a_receiver_that_does_not_answer_in_time_is_a_timeout(receiver: Receiver) -> None:
    receiver.delay = 1.0
    sender = Sender(allow_private=True, timeout=0.3)
    try:
        outcome = await sender.send(receiver.url, receiver.secret or "", "msg_x_1", b"{}")
    finally:
        await sender.close()
    assert (outcome.status_code, outcome.error) == (None, "timeout")
    assert 250 <= outcome.latency_ms < 900
