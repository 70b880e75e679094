"""Composition: an agent's owned nodes and their ancestry, folded into one system prompt.

Pure: given the nodes (with their active text), decide the layers, the text, the injection
mode and the composition id (domain/injection.py places the text into requests).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import msgspec

from charter.domain.rollouts import Arm, Rollout, visible_version
from charter.domain.tree import InjectionMode, Level, Priority, Status

RENDERER_VERSION = 1
_canonical = msgspec.json.Encoder()
# Independent of the configured depth limit: a corrupt cycle can never make a chain endless.
CHAIN_CAP = 256


@dataclass(frozen=True, slots=True)
class TreeNode:
    """What composition needs of a node: its place, its state and its active text."""

    id: str
    parent_id: str | None
    level: Level
    status: Status
    priority: Priority
    owner_agent_id: str | None
    injection_mode: InjectionMode
    created_at: datetime
    revision: int
    version: int | None  # the active version; None when deactivated
    title: str | None
    body: str | None
    # The running rollout, and its candidate version's text (DESIGN §8).
    rollout: Rollout | None = None
    candidate_title: str | None = None
    candidate_body: str | None = None

    def seen_by(self, agent_id: str) -> tuple[int | None, str | None, str | None, Arm | None]:
        """The version, title and body this agent sees, and its arm."""
        version, arm = visible_version(self.rollout, self.id, self.version, agent_id)
        if arm is Arm.CANDIDATE:
            return version, self.candidate_title, self.candidate_body, arm
        return version, self.title, self.body, arm


@dataclass(frozen=True, slots=True)
class Layer:
    directive_id: str
    level: Level
    depth: int
    title: str | None
    version: int | None
    revision: int
    arm: Arm | None = None

    @property
    def contributes(self) -> bool:
        return self.version is not None


@dataclass(frozen=True, slots=True)
class Composition:
    composition_id: str
    injection_mode: InjectionMode
    layers: tuple[Layer, ...]
    text: str
    # The values the text's placeholders took, by name (DESIGN §9), and the names it holds
    # that no value defines (left as written in the text; a write that would cause one is
    # refused, so only data older than the variables can show one).
    values: dict[str, str] = field(default_factory=dict)
    undefined: tuple[str, ...] = ()


# Template variables (DESIGN §9): `{{name}}`, and `{{{{` for a literal `{{`.
NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_TOKEN = re.compile(r"\{\{\{\{|\{\{([a-z][a-z0-9_]{0,63})\}\}")
BUILT_INS = ("agent_id", "realm_id", "team")
MAX_VALUE_BYTES = 1024


def placeholders(body: str) -> list[str]:
    """The names of `body`'s placeholders, in order of appearance (repeats kept)."""
    return [m.group(1) for m in _TOKEN.finditer(body) if m.group(1) is not None]


def substitute(body: str, values: Mapping[str, str]) -> str:
    """`body` with each placeholder whose name `values` holds replaced, `{{{{` made `{{`.

    One left-to-right scan: a value is never scanned again, so a value holding `{{x}}` stays
    as it is. A placeholder with no value is left as written.
    """

    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        if name is None:
            return "{{"
        return values.get(name, m.group(0))

    return _TOKEN.sub(one, body)


@dataclass(frozen=True, slots=True)
class Values:
    """Where a placeholder's value comes from, first to last: the agent's profile, the realm's
    defaults, then the built-ins (`agent_id`, `realm_id`, `team`)."""

    profile: Mapping[str, str] = field(default_factory=dict)
    defaults: Mapping[str, str] = field(default_factory=dict)
    realm_id: str | None = None

    def lookup(self, name: str, agent_id: str, team: str | None) -> str | None:
        if name in self.profile:
            return self.profile[name]
        if name in self.defaults:
            return self.defaults[name]
        if name == "agent_id":
            return agent_id
        if name == "realm_id":
            return self.realm_id
        if name == "team":
            return team
        return None


def chain_of(start: str, nodes: Mapping[str, TreeNode]) -> list[TreeNode]:
    """[start, parent, …, root]: stops at a missing parent, a repeat, or CHAIN_CAP nodes."""
    chain: list[TreeNode] = []
    seen: set[str] = set()
    current: str | None = start
    while current is not None and current in nodes and current not in seen:
        if len(chain) >= CHAIN_CAP:
            break
        seen.add(current)
        node = nodes[current]
        chain.append(node)
        current = node.parent_id
    return chain


def compose(
    agent_id: str,
    nodes: Iterable[TreeNode],
    bodies: Mapping[str, str],
    values: Values | None = None,
) -> Composition:
    """The composition of `agent_id` over `nodes` (its owned nodes and their ancestors).

    `bodies` maps directive id -> active body; text comes only from nodes with a version.
    A node in a rollout shows the agent its arm's version (`TreeNode.seen_by`). Placeholders
    in the bodies take their values from `values` (see `Values`).
    """
    by_id = {node.id: _as_seen(node, agent_id) for node in nodes}
    arms = {node.id: node.seen_by(agent_id)[3] for node in nodes if node.rollout is not None}
    seen_bodies = dict(bodies)
    for node in by_id.values():
        if node.id in arms and node.body is not None:
            seen_bodies[node.id] = node.body
    layers: dict[str, tuple[int, TreeNode]] = {}  # id -> (depth, node)
    owned_contributing: list[tuple[int, TreeNode]] = []
    for node in by_id.values():
        if node.owner_agent_id != agent_id:
            continue
        chain = chain_of(node.id, by_id)
        if chain[-1].parent_id is not None:
            continue  # the chain never reached a root: corrupt data, so it does not qualify
        if any(link.status is not Status.ACTIVE for link in chain):
            continue
        for steps_up, link in enumerate(chain):
            layers.setdefault(link.id, (len(chain) - steps_up, link))
        if node.version is not None:
            owned_contributing.append((len(chain), node))

    ordered = sorted(layers.values(), key=lambda item: _layer_order(item[0], item[1]))
    result = tuple(
        Layer(
            directive_id=node.id,
            level=node.level,
            depth=depth,
            title=node.title if node.version is not None else None,
            version=node.version,
            revision=node.revision,
            arm=arms.get(node.id),
        )
        for depth, node in ordered
    )
    mode = _injection_mode(owned_contributing)
    used, undefined = resolve_values(result, seen_bodies, values or Values(), agent_id)
    text = render(result, seen_bodies, used)
    templated = _templated(result, seen_bodies)
    cid = composition_id(mode, result, used if templated else None)
    return Composition(cid, mode, result, text, used, undefined)


def team_of(layers: Iterable[Layer]) -> str | None:
    """The built-in `team`: the title of the first contributing team-level layer."""
    for layer in layers:
        if layer.level is Level.TEAM and layer.contributes:
            return layer.title
    return None


def resolve_values(
    layers: Sequence[Layer], bodies: Mapping[str, str], values: Values, agent_id: str
) -> tuple[dict[str, str], tuple[str, ...]]:
    """The value of each name the contributing bodies use, and the names nothing defines."""
    team = team_of(layers)
    used: dict[str, str] = {}
    undefined: list[str] = []
    for layer in layers:
        if not layer.contributes:
            continue
        for name in placeholders(bodies[layer.directive_id]):
            if name in used or name in undefined:
                continue
            value = values.lookup(name, agent_id, team)
            if value is None:
                undefined.append(name)
            else:
                used[name] = value
    return used, tuple(undefined)


def _templated(layers: Iterable[Layer], bodies: Mapping[str, str]) -> bool:
    """Whether any contributing body holds template syntax (a placeholder or `{{{{`)."""
    return any("{{" in bodies[layer.directive_id] for layer in layers if layer.contributes)


def _as_seen(node: TreeNode, agent_id: str) -> TreeNode:
    """The node as this agent sees it: its arm's version and text in place of the active."""
    if node.rollout is None:
        return node
    version, title, body, _ = node.seen_by(agent_id)
    return dataclasses.replace(node, version=version, title=title, body=body)


def _layer_order(depth: int, node: TreeNode) -> tuple[int, int, datetime, str]:
    return (depth, node.priority.rank, node.created_at, node.id)


def _injection_mode(owned: Sequence[tuple[int, TreeNode]]) -> InjectionMode:
    """The deepest owned contributing node's mode (first in layer order on ties)."""
    if not owned:
        return InjectionMode.SYSTEM_FIRST
    deepest = max(depth for depth, _ in owned)
    first = min((n for d, n in owned if d == deepest), key=lambda n: _layer_order(deepest, n))
    return first.injection_mode


def render(
    layers: Iterable[Layer], bodies: Mapping[str, str], values: Mapping[str, str] | None = None
) -> str:
    """`#` * min(depth, 6), the title, a blank line, the body; layers joined by a blank line.

    With `values`, each body's placeholders are substituted (titles are never templates).
    """
    parts = [
        f"{'#' * min(layer.depth, 6)} {layer.title}\n\n"
        + (
            bodies[layer.directive_id]
            if values is None
            else substitute(bodies[layer.directive_id], values)
        )
        for layer in layers
        if layer.contributes
    ]
    return "\n\n".join(parts)


def values_hash(values: Mapping[str, str]) -> str:
    """sha256 of the canonical JSON of the used name -> value map (keys sorted)."""
    canonical = json.dumps(dict(values), separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def composition_id(
    mode: InjectionMode, layers: Iterable[Layer], values: Mapping[str, str] | None = None
) -> str:
    """`cmp_` + sha256 of the canonical JSON of what the text depends on.

    DESIGN §1 names `[renderer_version, injection_mode, [[directive_id, version], …]]`; the
    depth joins each pair because the heading level depends on it (a move changes the text
    without changing any version). Non-contributing layers add no text and are left out.
    When the text is a template (`values` given), the hash of the values used joins the key,
    so equal ids still mean equal text; a text with no template syntax keeps its old id.
    """
    key: list[object] = [
        RENDERER_VERSION,
        mode.value,
        [[layer.directive_id, layer.version, layer.depth] for layer in layers if layer.contributes],
    ]
    if values is not None:
        key.append(values_hash(values))
    # msgspec writes the compact canonical JSON that json.dumps(separators=(",", ":"),
    # ensure_ascii=False) writes, byte for byte (tests/domain), in a fraction of the time:
    # a fan-out makes thousands of these at once.
    return "cmp_" + hashlib.sha256(_canonical.encode(key)).hexdigest()
