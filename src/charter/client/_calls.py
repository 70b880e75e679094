"""Every endpoint as a `Call`: what to send and how to read the answer, with no I/O.

The sync and async clients both run these, so each endpoint is described once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from charter.client import models as m

T = TypeVar("T")
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | None = None
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    write: bool = False  # sent with an Idempotency-Key, reused by every retry
    timeout: float | None = None
    not_modified_ok: bool = False  # 304 is an answer, not an error


def _decoder(kind: type[T]) -> Callable[[httpx.Response], T]:
    decoder = msgspec.json.Decoder(kind)

    def read(response: httpx.Response) -> T:
        return decoder.decode(response.content)

    return read


def _nothing(_: httpx.Response) -> None:
    return None


def _seg(value: str) -> str:
    return quote(value, safe="")


def _query(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def inject_request(
    format: m.InjectFormat,
    messages: Sequence[Mapping[str, Any]] | None,
    input: str | Sequence[Mapping[str, Any]] | None,
    instructions: str | None,
    system: str | Sequence[Mapping[str, Any]] | None,
) -> dict[str, Any]:
    """The body of an inject call: the fields given (the server says which `format` takes)."""

    def listed(value: Any) -> Any:
        return value if value is None or isinstance(value, str) else list(value)

    body = _query(
        messages=listed(messages),
        input=listed(input),
        instructions=instructions,
        system=listed(system),
    )
    # openai-chat is the default: left out, the body is what servers before formats took.
    return body if format == "openai-chat" else {"format": format, **body}


def if_match(revision: int) -> dict[str, str]:
    return {"If-Match": f'"{revision}"'}


_realm = _decoder(m.Realm)
_directive = _decoder(m.Directive)
_prompt = _decoder(m.Prompt)


def _prompt_or_none(response: httpx.Response) -> m.Prompt | None:
    return None if response.status_code == 304 else _prompt(response)


class Endpoints:
    """Builds the calls; `realm` is the default for realm-scoped ones."""

    def __init__(self, realm: str | None) -> None:
        self.realm = realm

    def _r(self, realm: str | None) -> str:
        chosen = realm or self.realm
        if not chosen:
            raise ValueError("no realm: pass realm=, or give the client a default realm")
        return f"/v1/realms/{_seg(chosen)}"

    def _d(self, directive_id: str, realm: str | None) -> str:
        return f"{self._r(realm)}/directives/{_seg(directive_id)}"

    # realms

    def create_realm(self, realm_id: str, name: str | None) -> Call[m.Realm]:
        body = _encoder.encode(_query(id=realm_id, name=name))
        return Call("POST", "/v1/realms", _realm, body=body, write=True)

    def realms(self, limit: int | None, cursor: str | None) -> Call[m.RealmPage]:
        params = _query(limit=limit, cursor=cursor)
        return Call("GET", "/v1/realms", _decoder(m.RealmPage), params=params)

    def realm_info(self, realm: str | None) -> Call[m.Realm]:
        return Call("GET", self._r(realm), _realm)

    def tree(self, realm: str | None) -> Call[m.Forest]:
        return Call("GET", f"{self._r(realm)}/tree", _decoder(m.Forest))

    # directives

    def create(self, new: m.NewDirective, realm: str | None) -> Call[m.Directive]:
        path = f"{self._r(realm)}/directives"
        return Call("POST", path, _directive, body=_encoder.encode(new), write=True)

    def directives(self, filters: Mapping[str, Any], realm: str | None) -> Call[m.DirectivePage]:
        path = f"{self._r(realm)}/directives"
        return Call("GET", path, _decoder(m.DirectivePage), params=_query(**filters))

    def get(self, directive_id: str, realm: str | None) -> Call[m.Directive]:
        return Call("GET", self._d(directive_id, realm), _directive)

    def update(
        self, directive_id: str, patch: m.Patch, expected_revision: int, realm: str | None
    ) -> Call[m.Directive]:
        return Call(
            "PATCH",
            self._d(directive_id, realm),
            _directive,
            body=_encoder.encode(patch),
            headers=if_match(expected_revision),
            write=True,
        )

    def deactivate(
        self, directive_id: str, expected_revision: int, message: str | None, realm: str | None
    ) -> Call[None]:
        body = _encoder.encode(_query(message=message)) if message else None
        headers = if_match(expected_revision)
        if body is not None:
            headers["Content-Type"] = "application/json"
        path = self._d(directive_id, realm)
        return Call("DELETE", path, _nothing, body=body, headers=headers, write=True)

    def rollback(
        self,
        directive_id: str,
        version: int,
        expected_revision: int,
        message: str | None,
        realm: str | None,
    ) -> Call[m.Directive]:
        body = _encoder.encode(_query(version=version, message=message))
        path = f"{self._d(directive_id, realm)}/rollback"
        headers = if_match(expected_revision)
        return Call("POST", path, _directive, body=body, headers=headers, write=True)

    def put_rollout(
        self,
        directive_id: str,
        version: int,
        percent: float,
        agents: Sequence[str],
        guard: m.Guard | None,
        expected_revision: int,
        message: str | None,
        realm: str | None,
    ) -> Call[m.Directive]:
        fields: dict[str, Any] = {"version": version, "percent": percent, "agents": list(agents)}
        if guard is not None:
            fields["guard"] = msgspec.to_builtins(guard)
        if message is not None:
            fields["message"] = message
        path = f"{self._d(directive_id, realm)}/rollout"
        headers = if_match(expected_revision)
        return Call(
            "PUT", path, _directive, body=_encoder.encode(fields), headers=headers, write=True
        )

    # template variables

    def _variables_path(self, agent_id: str | None, realm: str | None) -> str:
        if agent_id is None:
            return f"{self._r(realm)}/variables"
        return f"{self._r(realm)}/agents/{_seg(agent_id)}/profile"

    def variables(self, agent_id: str | None, realm: str | None) -> Call[m.Variables]:
        return Call("GET", self._variables_path(agent_id, realm), _decoder(m.Variables))

    def put_variables(
        self,
        agent_id: str | None,
        variables: Mapping[str, str],
        expected_revision: int,
        realm: str | None,
    ) -> Call[m.Variables]:
        body = _encoder.encode({"variables": dict(variables)})
        return Call(
            "PUT",
            self._variables_path(agent_id, realm),
            _decoder(m.Variables),
            body=body,
            headers=if_match(expected_revision),
            write=True,
        )

    def rollout(self, directive_id: str, realm: str | None) -> Call[m.RolloutReport]:
        path = f"{self._d(directive_id, realm)}/rollout"
        return Call("GET", path, _decoder(m.RolloutReport))

    def end_rollout(
        self,
        directive_id: str,
        promote: bool,
        expected_revision: int,
        message: str | None,
        realm: str | None,
    ) -> Call[m.Directive]:
        body = _encoder.encode(_query(message=message)) if message else None
        headers = if_match(expected_revision)
        if body is not None:
            headers["Content-Type"] = "application/json"
        path = f"{self._d(directive_id, realm)}/rollout"
        if promote:
            return Call(
                "POST", f"{path}/promote", _directive, body=body, headers=headers, write=True
            )
        return Call("DELETE", path, _directive, body=body, headers=headers, write=True)

    def outcome(
        self, composition_id: str, agent_id: str, metric: str, value: float, realm: str | None
    ) -> Call[m.OutcomeAccepted]:
        body = _encoder.encode(
            {
                "composition_id": composition_id,
                "agent_id": agent_id,
                "metric": metric,
                "value": value,
            }
        )
        path = f"{self._r(realm)}/outcomes"
        return Call("POST", path, _decoder(m.OutcomeAccepted), body=body, write=True)

    def versions(
        self, directive_id: str, limit: int | None, cursor: str | None, realm: str | None
    ) -> Call[m.VersionPage]:
        path = f"{self._d(directive_id, realm)}/versions"
        params = _query(limit=limit, cursor=cursor)
        return Call("GET", path, _decoder(m.VersionPage), params=params)

    def version(self, directive_id: str, number: int, realm: str | None) -> Call[m.Version]:
        path = f"{self._d(directive_id, realm)}/versions/{number}"
        return Call("GET", path, _decoder(m.Version))

    def diff(self, directive_id: str, a: int, b: int, realm: str | None) -> Call[m.Diff]:
        path = f"{self._d(directive_id, realm)}/diff"
        return Call("GET", path, _decoder(m.Diff), params={"from": a, "to": b})

    def history(
        self, directive_id: str, limit: int | None, cursor: str | None, realm: str | None
    ) -> Call[m.HistoryPage]:
        path = f"{self._d(directive_id, realm)}/history"
        params = _query(limit=limit, cursor=cursor)
        return Call("GET", path, _decoder(m.HistoryPage), params=params)

    def ancestry(self, directive_id: str, realm: str | None) -> Call[m.Ancestry]:
        return Call("GET", f"{self._d(directive_id, realm)}/ancestry", _decoder(m.Ancestry))

    def subtree(self, directive_id: str, realm: str | None) -> Call[m.TreeNode]:
        return Call("GET", f"{self._d(directive_id, realm)}/tree", _decoder(m.TreeNode))

    # events

    def events(
        self,
        after: int,
        limit: int | None,
        types: Sequence[str],
        directive_id: str | None,
        realm: str | None,
    ) -> Call[m.EventPage]:
        params = _query(after=after, limit=limit, directive_id=directive_id)
        if types:
            params["type"] = list(types)
        return Call("GET", f"{self._r(realm)}/events", _decoder(m.EventPage), params=params)

    def events_stream_path(self, realm: str | None) -> str:
        return f"{self._r(realm)}/events/stream"

    # agents and prompts

    def agents(self, limit: int | None, cursor: str | None, realm: str | None) -> Call[m.AgentPage]:
        params = _query(limit=limit, cursor=cursor)
        return Call("GET", f"{self._r(realm)}/agents", _decoder(m.AgentPage), params=params)

    # claims and schedules

    def claim(
        self, directive_id: str, agent: str, lease_seconds: int, rerun: bool, realm: str | None
    ) -> Call[m.Claim]:
        body = _encoder.encode({"agent_id": agent, "lease_seconds": lease_seconds, "rerun": rerun})
        path = f"{self._d(directive_id, realm)}/claims"
        return Call("POST", path, _decoder(m.Claim), body=body, write=True)

    def heartbeat(
        self, directive_id: str, claim_id: str, lease_seconds: int | None, realm: str | None
    ) -> Call[m.Claim]:
        body = _encoder.encode(_query(lease_seconds=lease_seconds))
        path = f"{self._d(directive_id, realm)}/claims/{_seg(claim_id)}/heartbeat"
        return Call("POST", path, _decoder(m.Claim), body=body, write=True)

    def finish(
        self,
        directive_id: str,
        claim_id: str,
        outcome: m.Outcome,
        details: Mapping[str, Any],
        realm: str | None,
    ) -> Call[m.Finished]:
        body = _encoder.encode({"outcome": outcome, **_query(**details)})
        path = f"{self._d(directive_id, realm)}/claims/{_seg(claim_id)}/finish"
        return Call("POST", path, _decoder(m.Finished), body=body, write=True)

    def claims(
        self, filters: Mapping[str, Any], wait: int | None, realm: str | None
    ) -> Call[m.ClaimPage]:
        params = _query(**filters, wait=wait)
        return Call(
            "GET",
            f"{self._r(realm)}/claims",
            _decoder(m.ClaimPage),
            params=params,
            timeout=(wait + 10.0) if wait else None,
        )

    def schedule(
        self,
        directive_id: str,
        at: str,
        action: Mapping[str, Any],
        expected_revision: int | None,
        realm: str | None,
    ) -> Call[m.Schedule]:
        body = _encoder.encode(
            _query(at=at, action=dict(action), expected_revision=expected_revision)
        )
        path = f"{self._d(directive_id, realm)}/schedules"
        return Call("POST", path, _decoder(m.Schedule), body=body, write=True)

    def schedules(
        self, directive_id: str, limit: int | None, cursor: str | None, realm: str | None
    ) -> Call[m.SchedulePage]:
        path = f"{self._d(directive_id, realm)}/schedules"
        params = _query(limit=limit, cursor=cursor)
        return Call("GET", path, _decoder(m.SchedulePage), params=params)

    def cancel_schedule(
        self, directive_id: str, schedule_id: str, realm: str | None
    ) -> Call[m.Schedule]:
        path = f"{self._d(directive_id, realm)}/schedules/{_seg(schedule_id)}"
        return Call("DELETE", path, _decoder(m.Schedule), write=True)

    def _agent(self, agent: str, realm: str | None) -> str:
        return f"{self._r(realm)}/agents/{_seg(agent)}"

    def prompt(
        self, agent: str, etag: str | None, wait: int | None, realm: str | None
    ) -> Call[m.Prompt | None]:
        headers = {"If-None-Match": f'"{etag}"'} if etag else {}
        params = _query(wait=wait) if etag else None
        return Call(
            "GET",
            f"{self._agent(agent, realm)}/prompt",
            _prompt_or_none,
            params=params,
            headers=headers,
            timeout=(wait + 10.0) if wait and etag else None,
            not_modified_ok=True,
        )

    def prompt_stream_path(self, agent: str, realm: str | None) -> str:
        return f"{self._agent(agent, realm)}/prompt/stream"

    def inject(self, agent: str, request: Mapping[str, Any], realm: str | None) -> Call[m.Injected]:
        body = _encoder.encode(request)
        # No Idempotency-Key: inject changes nothing, so retrying it is already safe.
        path = f"{self._agent(agent, realm)}/inject"
        return Call("POST", path, _decoder(m.Injected), body=body)

    def composition(self, composition_id: str, realm: str | None) -> Call[m.Composition]:
        path = f"{self._r(realm)}/compositions/{_seg(composition_id)}"
        return Call("GET", path, _decoder(m.Composition))

    # webhooks

    def _hooks(self, realm: str | None) -> str:
        return f"{self._r(realm)}/webhooks"

    def create_webhook(
        self,
        url: str,
        events: Sequence[str],
        agents: Sequence[str] | None,
        realm: str | None,
    ) -> Call[m.CreatedWebhook]:
        fields = _query(
            url=url, events=list(events), agents=None if agents is None else list(agents)
        )
        body = _encoder.encode(fields)
        return Call("POST", self._hooks(realm), _decoder(m.CreatedWebhook), body=body, write=True)

    def webhooks(
        self, limit: int | None, cursor: str | None, realm: str | None
    ) -> Call[m.WebhookPage]:
        params = _query(limit=limit, cursor=cursor)
        return Call("GET", self._hooks(realm), _decoder(m.WebhookPage), params=params)

    def webhook(self, webhook_id: str, realm: str | None) -> Call[m.Webhook]:
        return Call("GET", f"{self._hooks(realm)}/{_seg(webhook_id)}", _decoder(m.Webhook))

    def delete_webhook(self, webhook_id: str, realm: str | None) -> Call[None]:
        path = f"{self._hooks(realm)}/{_seg(webhook_id)}"
        return Call("DELETE", path, _nothing, write=True)

    def enable_webhook(self, webhook_id: str, realm: str | None) -> Call[m.Webhook]:
        path = f"{self._hooks(realm)}/{_seg(webhook_id)}/enable"
        return Call("POST", path, _decoder(m.Webhook), write=True)

    def deliveries(
        self, webhook_id: str, limit: int | None, cursor: str | None, realm: str | None
    ) -> Call[m.DeliveryPage]:
        params = _query(limit=limit, cursor=cursor)
        path = f"{self._hooks(realm)}/{_seg(webhook_id)}/deliveries"
        return Call("GET", path, _decoder(m.DeliveryPage), params=params)

    def retry_delivery(
        self, webhook_id: str, delivery_id: str, realm: str | None
    ) -> Call[m.Delivery]:
        path = f"{self._hooks(realm)}/{_seg(webhook_id)}/deliveries/{_seg(delivery_id)}/retry"
        return Call("POST", path, _decoder(m.Delivery), write=True)

    # keys

    def create_key(
        self, role: m.Role, realms: Sequence[str], agent_id: str | None, name: str | None
    ) -> Call[m.CreatedKey]:
        body = _encoder.encode(_query(role=role, realms=list(realms), agent_id=agent_id, name=name))
        return Call("POST", "/v1/keys", _decoder(m.CreatedKey), body=body, write=True)

    def keys(self, limit: int | None, cursor: str | None) -> Call[m.KeyPage]:
        params = _query(limit=limit, cursor=cursor)
        return Call("GET", "/v1/keys", _decoder(m.KeyPage), params=params)

    def revoke_key(self, key_id: str) -> Call[None]:
        return Call("DELETE", f"/v1/keys/{_seg(key_id)}", _nothing, write=True)
