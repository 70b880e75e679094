"""The Python client (charter.client) in tests: retries fit for a test, a realm of its own."""

from __future__ import annotations

import uuid

from charter.client import Charter, RetryPolicy

# Retries short enough for a test that restarts the server under the client.
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.05, max_delay=0.3)


def new_realm(charter: Charter) -> str:
    """A new realm, made through the client; its id."""
    realm_id = "c-" + uuid.uuid4().hex[:16]
    charter.create_realm(realm_id)
    return realm_id
