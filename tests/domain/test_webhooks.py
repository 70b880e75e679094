"""Webhooks' pure rules: signatures as Standard Webhooks verifies them, the address guard,
the backoff, the filters."""

from __future__ import annotations

import ipaddress
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook

from charter.domain import webhooks as rules

TEXT = st.text(st.characters(exclude_categories=["Cs"]))  # encodable as UTF-8
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)


@given(document=st.dictionaries(TEXT, JSON, max_size=6), seq=st.integers(1, 2**62))
def test_a_signature_verifies_with_the_standard_webhooks_package(
    document: dict[str, object], seq: int
) -> None:
    body = json.dumps(document, ensure_ascii=False).encode()  # the package reads JSON bodies
    secret = rules.new_secret()
    message_id = rules.message_id("whk_01jd0000000000000000000000", seq)
    timestamp = int(datetime.now(UTC).timestamp())
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": rules.sign(secret, message_id, timestamp, body),
    }
    Webhook(secret).verify(body, headers)  # raises if not
    other = rules.new_secret()
    with pytest.raises(Exception, match="signature"):
        Webhook(other).verify(body, headers)


def test_the_message_id_is_the_same_for_the_same_webhook_and_event() -> None:
    a = rules.message_id("whk_01jd0000000000000000000000", 7)
    assert a == rules.message_id("whk_01jd0000000000000000000000", 7)
    assert a != rules.message_id("whk_01jd0000000000000000000000", 8)
    assert a != rules.message_id("whk_01jd0000000000000000000001", 7)


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("10.0.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.0.1", "private"),
        ("100.64.0.1", "private"),
        ("fd12::1", "private"),
        ("192.0.2.1", "private"),  # documentation: not globally reachable
        ("93.184.215.14", None),
        ("2606:4700::1111", None),
    ],
)
def test_the_address_guard(address: str, why: str | None) -> None:
    assert rules.refusal(ipaddress.ip_address(address)) == why


@given(failures=st.integers(1, 10_000), jitter=st.floats(0, 1, exclude_max=True))
def test_the_backoff_doubles_up_to_its_cap_and_jitters_in_its_upper_half(
    failures: int, jitter: float
) -> None:
    horizon = 24 * 3600.0
    wait = rules.backoff(failures, horizon, jitter)
    step = min(rules.BACKOFF_CAP_SECONDS, rules.BACKOFF_BASE_SECONDS * 2.0 ** min(failures - 1, 40))
    assert step / 2 <= wait <= step
    assert rules.backoff(failures + 1, horizon, jitter) >= wait


def test_a_short_horizon_caps_the_backoff_at_an_eighth_of_it() -> None:
    assert rules.backoff(50, 8.0, 0.999) <= 1.0


def test_filters() -> None:
    assert rules.wants(["*"], None, "directive.created", [])
    assert rules.wants(["directive.created"], None, "directive.created", ["a"])
    assert not rules.wants(["directive.moved"], None, "directive.created", ["a"])
    assert rules.wants(["*"], ["a", "b"], "directive.created", ["b"])
    assert not rules.wants(["*"], ["a"], "directive.created", ["b"])
    assert not rules.wants(["*"], ["a"], "webhook.disabled", [])


def test_work_events_concern_their_holder_and_owner() -> None:
    claimed = {"claim_id": "clm_x", "agent_id": "w1", "owner_agent_id": "o1", "attempt": 1}
    for kind in (
        "directive.claimed",
        "directive.claim_expired",
        "directive.succeeded",
        "directive.failed",
    ):
        about = rules.concerned(kind, [], claimed)
        assert sorted(about) == ["o1", "w1"]
        assert rules.wants(["*"], ["o1"], kind, about)
        assert rules.wants(["*"], ["w1"], kind, about)
        assert not rules.wants(["*"], ["x"], kind, about)
    # No owner, or an event written before the owner was recorded: the holder alone.
    assert rules.concerned("directive.claimed", [], {"agent_id": "w1", "owner_agent_id": None}) == [
        "w1"
    ]
    assert rules.concerned("directive.failed", [], {"agent_id": "w1"}) == ["w1"]
    # Other events keep to their affected agents, whatever their payload names.
    assert rules.concerned("directive.updated", ["a"], {"agent_id": "w1"}) == ["a"]
    assert rules.concerned("webhook.disabled", [], {"webhook_id": "whk_x"}) == []


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "https://",
        "https://u:p@example.com/",
        "https://example.com:0x/",
        "https://example.com/#frag",
        "https://exa mple.com/",
        "https://example.com/\u00e9",
        "//example.com/",
    ],
)
def test_bad_targets(url: str) -> None:
    with pytest.raises(rules.BadTarget):
        rules.target(url)


def test_a_target_names_its_port() -> None:
    assert rules.target("https://example.com/x") == ("https", "example.com", 443)
    assert rules.target("http://[::1]:8080/x?y=1") == ("http", "::1", 8080)
