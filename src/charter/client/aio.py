"""`AsyncCharter`: the asyncio client.

sync.py is generated from this file (scripts/gen-sync): write here what both clients do,
in a form the generation rules in `_generate.py` turn into blocking code.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncGenerator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
import msgspec
import stamina
from httpx_sse import EventSource, ServerSentEvent

from charter.client import _retry, errors
from charter.client import models as m
from charter.client._calls import Call, Endpoints, inject_request
from charter.client._retry import RetryPolicy
from charter.client._shared import (
    EVENT,
    PROMPT,
    STALE_IF,
    Cursor,
    Reapply,
    client_headers,
    prepared,
    stream_headers,
)
from charter.client.errors import StaleRevision

T = TypeVar("T")


class AsyncCharter:
    """A Charter server, over HTTP. `realm` is the default for realm-scoped methods."""

    def __init__(
        self,
        url: str,
        key: str | None = None,
        *,
        realm: str | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        stream_read_timeout: float = 45.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self.stream_read_timeout = stream_read_timeout
        self._timeout = timeout
        self._api = Endpoints(realm)
        self._http = httpx.AsyncClient(
            base_url=url.rstrip("/"),
            headers=client_headers(key, headers),
            timeout=timeout,
            transport=transport,
        )
        self._prompts: dict[tuple[str, str], m.Prompt] = {}

    @classmethod
    def from_env(cls, **options: Any) -> AsyncCharter:
        """From CHARTER_URL, CHARTER_KEY and CHARTER_REALM."""
        url = os.environ.get("CHARTER_URL", "http://127.0.0.1:8000")
        key = os.environ.get("CHARTER_KEY")
        options.setdefault("realm", os.environ.get("CHARTER_REALM") or None)
        return cls(url, key, **options)

    @property
    def realm(self) -> str | None:
        return self._api.realm

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _send(self, call: Call[T]) -> T:
        """One call, retried on connection errors and retryable statuses, with one key."""
        key = str(uuid.uuid4()) if call.write else None
        request = prepared(call, key)
        timeout = call.timeout if call.timeout is not None else self._timeout

        async def attempt() -> httpx.Response:
            return _retry.check(await self._http.request(**request, timeout=timeout))

        retrying = stamina.AsyncRetryingCaller(**self.retry.options()).on(self.retry.backoff)
        try:
            response = await retrying(attempt)
        except httpx.TransportError as exc:
            raise errors.TransportError(f"{type(exc).__name__}: {exc}") from exc
        except _retry.Retryable as exc:
            response = exc.response  # out of tries: the last answer's problem is raised
        if response.status_code == 304 and call.not_modified_ok:
            return call.read(response)
        _retry.raise_for_problem(response)
        return call.read(response)

    # realms

    async def create_realm(self, realm_id: str, name: str | None = None) -> m.Realm:
        return await self._send(self._api.create_realm(realm_id, name))

    async def realms(self, *, limit: int | None = None, cursor: str | None = None) -> m.RealmPage:
        return await self._send(self._api.realms(limit, cursor))

    async def iter_realms(self) -> AsyncGenerator[m.Realm, None]:
        cursor: str | None = None
        while True:
            page = await self.realms(limit=500, cursor=cursor)
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def realm_info(self, realm: str | None = None) -> m.Realm:
        return await self._send(self._api.realm_info(realm))

    async def tree(self, realm: str | None = None) -> m.Forest:
        return await self._send(self._api.tree(realm))

    # directives

    async def create(self, new: m.NewDirective, *, realm: str | None = None) -> m.Directive:
        return await self._send(self._api.create(new, realm))

    async def directives(self, *, realm: str | None = None, **filters: Any) -> m.DirectivePage:
        """One page; filters: level, status, parent_id, owner_agent_id, priority, key, roots,
        limit, cursor."""
        return await self._send(self._api.directives(filters, realm))

    async def iter_directives(
        self, *, realm: str | None = None, **filters: Any
    ) -> AsyncGenerator[m.DirectiveSummary, None]:
        cursor: str | None = None
        while True:
            page = await self.directives(realm=realm, **filters, limit=500, cursor=cursor)
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def get(self, directive_id: str, *, realm: str | None = None) -> m.Directive:
        return await self._send(self._api.get(directive_id, realm))

    async def find(self, key: str, *, realm: str | None = None) -> m.Directive | None:
        """The directive with this operator key, or None."""
        page = await self.directives(realm=realm, key=key)
        return await self.get(page.items[0].id, realm=realm) if page.items else None

    async def update(
        self,
        directive_id: str,
        patch: m.Patch | None = None,
        *,
        expected_revision: int | None = None,
        retry_on_conflict: Reapply | None = None,
        max_conflicts: int = 5,
        realm: str | None = None,
    ) -> m.Directive:
        """A compare-and-swap update.

        With `retry_on_conflict`, a stale revision re-reads the directive, asks the function
        for the patch to apply to it now (None: give up, and return what is there), and tries
        again, up to `max_conflicts` times. Without a patch or revision, it starts by reading.
        """
        if retry_on_conflict is None:
            if patch is None or expected_revision is None:
                raise ValueError("an update needs a patch and expected_revision")
            return await self._send(self._api.update(directive_id, patch, expected_revision, realm))
        if patch is None or expected_revision is None:
            current = await self.get(directive_id, realm=realm)
            patch, expected_revision = retry_on_conflict(current), current.revision
            if patch is None:
                return current
        for conflicts in range(max_conflicts + 1):
            call = self._api.update(directive_id, patch, expected_revision, realm)
            try:
                return await self._send(call)
            except StaleRevision:
                if conflicts == max_conflicts:
                    raise
            current = await self.get(directive_id, realm=realm)
            patch, expected_revision = retry_on_conflict(current), current.revision
            if patch is None:
                return current
        raise AssertionError("unreachable")

    async def deactivate(
        self,
        directive_id: str,
        *,
        expected_revision: int,
        message: str | None = None,
        realm: str | None = None,
    ) -> None:
        await self._send(self._api.deactivate(directive_id, expected_revision, message, realm))

    async def rollback(
        self,
        directive_id: str,
        version: int,
        *,
        expected_revision: int,
        message: str | None = None,
        realm: str | None = None,
    ) -> m.Directive:
        call = self._api.rollback(directive_id, version, expected_revision, message, realm)
        return await self._send(call)

    async def start_rollout(
        self,
        directive_id: str,
        version: int,
        percent: float,
        *,
        expected_revision: int,
        agents: Sequence[str] = (),
        guard: m.Guard | None = None,
        message: str | None = None,
        realm: str | None = None,
    ) -> m.Directive:
        """Start a rollout of `version` to `percent` of the agents (and the pinned `agents`),
        or change the running one's percent, pins or guard: compare-and-swap."""
        call = self._api.put_rollout(
            directive_id, version, percent, agents, guard, expected_revision, message, realm
        )
        return await self._send(call)

    # template variables

    async def profile(self, agent_id: str, *, realm: str | None = None) -> m.Variables:
        """The agent's profile: its own values for template variables."""
        return await self._send(self._api.variables(agent_id, realm))

    async def set_profile(
        self,
        agent_id: str,
        variables: Mapping[str, str],
        *,
        expected_revision: int,
        realm: str | None = None,
    ) -> m.Variables:
        """Replace the agent's profile: compare-and-swap (0 for the first)."""
        call = self._api.put_variables(agent_id, variables, expected_revision, realm)
        return await self._send(call)

    async def variables(self, *, realm: str | None = None) -> m.Variables:
        """The realm's default values for template variables."""
        return await self._send(self._api.variables(None, realm))

    async def set_variables(
        self, variables: Mapping[str, str], *, expected_revision: int, realm: str | None = None
    ) -> m.Variables:
        """Replace the realm's defaults: compare-and-swap (0 for the first)."""
        call = self._api.put_variables(None, variables, expected_revision, realm)
        return await self._send(call)

    async def rollout(self, directive_id: str, *, realm: str | None = None) -> m.RolloutReport:
        """The running rollout, and per metric each arm's outcomes with the Welch interval."""
        return await self._send(self._api.rollout(directive_id, realm))

    async def promote_rollout(
        self,
        directive_id: str,
        *,
        expected_revision: int,
        message: str | None = None,
        realm: str | None = None,
    ) -> m.Directive:
        """Make the candidate the active version and end the rollout."""
        call = self._api.end_rollout(directive_id, True, expected_revision, message, realm)
        return await self._send(call)

    async def abort_rollout(
        self,
        directive_id: str,
        *,
        expected_revision: int,
        message: str | None = None,
        realm: str | None = None,
    ) -> m.Directive:
        """End the rollout: every agent sees the active version again."""
        call = self._api.end_rollout(directive_id, False, expected_revision, message, realm)
        return await self._send(call)

    async def report_outcome(
        self,
        composition_id: str,
        agent_id: str,
        metric: str,
        value: float,
        *,
        realm: str | None = None,
    ) -> m.OutcomeAccepted:
        """Report a metric's value for a composition the agent used (202)."""
        call = self._api.outcome(composition_id, agent_id, metric, value, realm)
        return await self._send(call)

    async def versions(
        self,
        directive_id: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        realm: str | None = None,
    ) -> m.VersionPage:
        return await self._send(self._api.versions(directive_id, limit, cursor, realm))

    async def version(
        self, directive_id: str, number: int, *, realm: str | None = None
    ) -> m.Version:
        return await self._send(self._api.version(directive_id, number, realm))

    async def diff(
        self, directive_id: str, from_version: int, to_version: int, *, realm: str | None = None
    ) -> m.Diff:
        return await self._send(self._api.diff(directive_id, from_version, to_version, realm))

    async def history(
        self,
        directive_id: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        realm: str | None = None,
    ) -> m.HistoryPage:
        return await self._send(self._api.history(directive_id, limit, cursor, realm))

    async def ancestry(self, directive_id: str, *, realm: str | None = None) -> m.Ancestry:
        return await self._send(self._api.ancestry(directive_id, realm))

    async def subtree(self, directive_id: str, *, realm: str | None = None) -> m.TreeNode:
        return await self._send(self._api.subtree(directive_id, realm))

    # events

    async def events(
        self,
        *,
        after: int = 0,
        limit: int | None = None,
        types: Sequence[str] = (),
        directive_id: str | None = None,
        realm: str | None = None,
    ) -> m.EventPage:
        return await self._send(self._api.events(after, limit, types, directive_id, realm))

    async def follow_events(
        self, *, after: int | None = None, realm: str | None = None
    ) -> AsyncGenerator[m.Event, None]:
        """The realm's events as they happen (after `after`, else from now), reconnecting and
        resuming from the last one seen."""
        path = self._api.events_stream_path(realm)
        cursor = Cursor(None if after is None else str(after))
        async for event in self._stream(path, cursor):
            if event.event.startswith("directive."):
                item = EVENT.decode(event.data)
                cursor.value = str(item.seq)
                yield item

    # claims and schedules

    async def claim(
        self,
        directive_id: str,
        agent: str,
        *,
        lease_seconds: int = 60,
        rerun: bool = False,
        realm: str | None = None,
    ) -> m.Claim:
        """Take the directive's one live claim for `agent`; AlreadyClaimed, NotDue if not."""
        return await self._send(self._api.claim(directive_id, agent, lease_seconds, rerun, realm))

    async def heartbeat(
        self,
        directive_id: str,
        claim_id: str,
        *,
        lease_seconds: int | None = None,
        realm: str | None = None,
    ) -> m.Claim:
        """Extend the claim's lease from now (by its own lease, unless given)."""
        return await self._send(self._api.heartbeat(directive_id, claim_id, lease_seconds, realm))

    async def finish(
        self,
        directive_id: str,
        claim_id: str,
        outcome: m.Outcome,
        *,
        result: Any = None,
        error_code: str | None = None,
        cascade: bool = False,
        realm: str | None = None,
    ) -> m.Finished:
        """End the claim: succeeded completes the directive, failed records last_failure."""
        details = {"result": result, "error_code": error_code, "cascade": cascade or None}
        return await self._send(self._api.finish(directive_id, claim_id, outcome, details, realm))

    async def claims(
        self,
        *,
        agent: str | None = None,
        state: m.ClaimState | None = None,
        wait: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        realm: str | None = None,
    ) -> m.ClaimPage:
        """Claims; with `agent`, also what it may claim now (`wait` s for some, ≤ 60)."""
        filters = {"agent_id": agent, "state": state, "limit": limit, "cursor": cursor}
        return await self._send(self._api.claims(filters, wait, realm))

    async def schedule(
        self,
        directive_id: str,
        at: datetime,
        action: dict[str, Any],
        *,
        expected_revision: int | None = None,
        realm: str | None = None,
    ) -> m.Schedule:
        """Run `action` on the directive at `at` (an aware datetime), once."""
        call = self._api.schedule(directive_id, at.isoformat(), action, expected_revision, realm)
        return await self._send(call)

    async def schedules(
        self,
        directive_id: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        realm: str | None = None,
    ) -> m.SchedulePage:
        return await self._send(self._api.schedules(directive_id, limit, cursor, realm))

    async def cancel_schedule(
        self, directive_id: str, schedule_id: str, *, realm: str | None = None
    ) -> m.Schedule:
        return await self._send(self._api.cancel_schedule(directive_id, schedule_id, realm))

    # agents and prompts

    async def agents(
        self, *, limit: int | None = None, cursor: str | None = None, realm: str | None = None
    ) -> m.AgentPage:
        return await self._send(self._api.agents(limit, cursor, realm))

    async def prompt(
        self, agent: str, *, wait: int | None = None, realm: str | None = None
    ) -> m.Prompt:
        """The agent's composed prompt, revalidated against the local copy (If-None-Match).

        `wait` (≤ 60 s) long-polls for a change once a copy exists. Once a copy exists, a
        server that cannot be reached or cannot serve gets the copy back with `stale=True`.
        """
        slot = (realm or self._api.realm or "", agent)
        copy = self._prompts.get(slot)
        etag = copy.composition_id if copy else None
        try:
            fresh = await self._send(self._api.prompt(agent, etag, wait, realm))
        except STALE_IF:
            if copy is None:
                raise
            return msgspec.structs.replace(copy, stale=True)
        if fresh is None:
            assert copy is not None  # a 304 answers only a conditional request
            return copy
        self._prompts[slot] = fresh
        return fresh

    async def watch(
        self, agent: str, *, realm: str | None = None
    ) -> AsyncGenerator[m.Prompt, None]:
        """Each new composition of the agent's prompt, the current one first.

        Reconnects with backoff when the stream breaks, and yields on reconnection only if the
        prompt changed meanwhile. Raises for problems that retrying cannot fix (404, 401…).
        """
        slot = (realm or self._api.realm or "", agent)
        path = self._api.prompt_stream_path(agent, realm)
        last = Cursor(None)
        async for event in self._stream(path, last):
            if event.event != "prompt":
                continue
            prompt = PROMPT.decode(event.data)
            self._prompts[slot] = prompt
            if prompt.composition_id != last.value:
                last.value = prompt.composition_id
                yield prompt

    async def _stream(self, path: str, resume: Cursor) -> AsyncGenerator[ServerSentEvent, None]:
        """The stream's events, heartbeats left out. It connects again, from `resume`, as
        often as the stream breaks, and raises for problems that retrying cannot fix."""
        timeout = httpx.Timeout(self._timeout, read=self.stream_read_timeout)

        async def connect() -> httpx.Response:
            headers = stream_headers(resume.value)
            request = self._http.build_request("GET", path, headers=headers, timeout=timeout)
            response = await self._http.send(request, stream=True)
            if response.status_code >= 400:
                try:
                    await response.aread()
                finally:
                    await response.aclose()
                _retry.check(response)
            return response

        while True:
            options = self.retry.reconnect_options()
            reconnect = stamina.AsyncRetryingCaller(**options).on(self.retry.backoff)
            response = await reconnect(connect)
            try:
                _retry.raise_for_problem(response)
                async for event in EventSource(response).aiter_sse():
                    # httpx-sse hands on each `: ping` heartbeat as an empty "message".
                    if event.data:
                        yield event
            except httpx.TransportError:
                pass  # the stream broke: connect again
            finally:
                await response.aclose()
            await asyncio.sleep(self.retry.base_delay)

    async def inject(
        self,
        agent: str,
        messages: Sequence[Mapping[str, Any]] | None = None,
        *,
        format: m.InjectFormat = "openai-chat",
        input: str | Sequence[Mapping[str, Any]] | None = None,
        instructions: str | None = None,
        system: str | Sequence[Mapping[str, Any]] | None = None,
        realm: str | None = None,
    ) -> m.Injected:
        """The agent's prompt placed into a request of `format`: openai-chat `messages`,
        openai-responses `input` (and `instructions`), anthropic `messages` (and `system`).
        `Injected.kwargs()` hands the result to the provider's SDK."""
        request = inject_request(format, messages, input, instructions, system)
        return await self._send(self._api.inject(agent, request, realm))

    async def composition(self, composition_id: str, *, realm: str | None = None) -> m.Composition:
        return await self._send(self._api.composition(composition_id, realm))

    # keys

    async def create_webhook(
        self,
        url: str,
        events: Sequence[str] = ("*",),
        *,
        agents: Sequence[str] | None = None,
        realm: str | None = None,
    ) -> m.CreatedWebhook:
        """Subscribe `url` to the realm's events; the answer holds the signing secret, once."""
        return await self._send(self._api.create_webhook(url, events, agents, realm))

    async def webhooks(
        self, *, limit: int | None = None, cursor: str | None = None, realm: str | None = None
    ) -> m.WebhookPage:
        return await self._send(self._api.webhooks(limit, cursor, realm))

    async def webhook(self, webhook_id: str, *, realm: str | None = None) -> m.Webhook:
        return await self._send(self._api.webhook(webhook_id, realm))

    async def delete_webhook(self, webhook_id: str, *, realm: str | None = None) -> None:
        await self._send(self._api.delete_webhook(webhook_id, realm))

    async def enable_webhook(self, webhook_id: str, *, realm: str | None = None) -> m.Webhook:
        """Deliver again after `webhook.disabled`, from where its cursor stands."""
        return await self._send(self._api.enable_webhook(webhook_id, realm))

    async def deliveries(
        self,
        webhook_id: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        realm: str | None = None,
    ) -> m.DeliveryPage:
        """The webhook's delivery attempts, newest first."""
        return await self._send(self._api.deliveries(webhook_id, limit, cursor, realm))

    async def retry_delivery(
        self, webhook_id: str, delivery_id: str, *, realm: str | None = None
    ) -> m.Delivery:
        """Send that delivery's event again now (same `webhook-id`); the new attempt."""
        return await self._send(self._api.retry_delivery(webhook_id, delivery_id, realm))

    async def create_key(
        self,
        role: m.Role,
        realms: Sequence[str] = ("*",),
        *,
        agent_id: str | None = None,
        name: str | None = None,
    ) -> m.CreatedKey:
        return await self._send(self._api.create_key(role, realms, agent_id, name))

    async def keys(self, *, limit: int | None = None, cursor: str | None = None) -> m.KeyPage:
        return await self._send(self._api.keys(limit, cursor))

    async def revoke_key(self, key_id: str) -> None:
        await self._send(self._api.revoke_key(key_id))
