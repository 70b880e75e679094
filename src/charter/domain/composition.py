"""Composition: an agent's owned nodes and their ancestry, folded into one system prompt.

Pure: given the nodes (with their active text), decide the layers, the text, the injection
mode and the composition id (domain/injection.py places the text into requests).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
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


def compose(agent_id: str, nodes: Iterable[TreeNode], bodies: Mapping[str, str]) -> Composition:
    """The composition of `agent_id` over `nodes` (its owned nodes and their ancestors).

    `bodies` maps directive id -> active body; text comes only from nodes with a version.
    A node in a rollout shows the agent its arm's version (`TreeNode.seen_by`).
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
    text = render(result, seen_bodies)
    return Composition(composition_id(mode, result), mode, result, text)


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


def render(layers: Iterable[Layer], bodies: Mapping[str, str]) -> str:
    """`#` * min(depth, 6), the title, a blank line, the body; layers joined by a blank line."""
    parts = [
        f"{'#' * min(layer.depth, 6)} {layer.title}\n\n{bodies[layer.directive_id]}"
        for layer in layers
        if layer.contributes
    ]
    return "\n\n".join(parts)


def composition_id(mode: InjectionMode, layers: Iterable[Layer]) -> str:
    """`cmp_` + sha256 of the canonical JSON of what the text depends on.

    DESIGN §1 names `[renderer_version, injection_mode, [[directive_id, version], …]]`; the
    depth joins each pair because the heading level depends on it (a move changes the text
    without changing any version). Non-contributing layers add no text and are left out.
    """
    key = [
        RENDERER_VERSION,
        mode.value,
        [[layer.directive_id, layer.version, layer.depth] for layer in layers if layer.contributes],
    ]
    # msgspec writes the compact canonical JSON that json.dumps(separators=(",", ":"),
    # ensure_ascii=False) writes, byte for byte (tests/domain), in a fraction of the time:
    # a fan-out makes thousands of these at once.
    return "cmp_" + hashlib.sha256(_canonical.encode(key)).hexdigest()
