"""Who may do what: roles, the access a route needs, and the caller a key stands for."""

from __future__ import annotations

import enum
from dataclasses import dataclass

ALL_REALMS = "*"


class Role(enum.StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    READER = "reader"
    AGENT = "agent"


class Access(enum.StrEnum):
    """What a route needs. Every route declares one (tests/api/test_auth.py checks that)."""

    PUBLIC = "public"  # liveness, readiness, metrics, the OpenAPI document
    ANY = "any"  # any valid key (lists filter by the key's realms)
    READ = "read"  # directives, trees, history, events
    WRITE = "write"  # create, update, rollback, deactivate
    PROMPT = "prompt"  # an agent's composition, stream and inject
    REPORT = "report"  # an outcome of a composition (an agent key: for itself only)
    WORK = "work"  # claims: take, heartbeat, finish (an agent key for its own agent only)
    ADMIN = "admin"  # realm creation, keys


_GRANTS: dict[Role, frozenset[Access]] = {
    Role.ADMIN: frozenset(Access),
    Role.OPERATOR: frozenset(
        {Access.ANY, Access.READ, Access.WRITE, Access.PROMPT, Access.REPORT, Access.WORK}
    ),
    Role.READER: frozenset({Access.ANY, Access.READ, Access.PROMPT}),
    Role.AGENT: frozenset({Access.ANY, Access.PROMPT, Access.REPORT, Access.WORK}),
}


@dataclass(frozen=True, slots=True)
class Caller:
    key_id: str
    role: Role
    realms: frozenset[str]
    agent_id: str | None = None
    name: str | None = None

    def sees_realm(self, realm_id: str) -> bool:
        return ALL_REALMS in self.realms or realm_id in self.realms

    def may(self, access: Access, agent_id: str | None = None) -> bool:
        """Whether the role grants `access`; an agent key only ever for its own agent id."""
        if access is Access.PUBLIC:
            return True
        if access not in _GRANTS[self.role]:
            return False
        if self.role is Role.AGENT and access is Access.PROMPT:
            return agent_id is not None and agent_id == self.agent_id
        return True

    def acts_for(self, agent_id: str) -> bool:
        """Whether the caller may act as `agent_id`: an agent key only as its own agent."""
        return self.role is not Role.AGENT or agent_id == self.agent_id
