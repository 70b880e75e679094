"""Read-side use cases that shape more than one row: trees, diffs, history pages."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection

from charter.domain.versions import unified_diff
from charter.errors import NotFound
from charter.store import directives, realms, versions
from charter.store.directives import WALK_CAP, Directive


@dataclass(slots=True)
class TreeNode:
    directive: Directive
    children: list[TreeNode] = field(default_factory=list)


def _order(node: Directive) -> tuple[int, object, str]:
    return (node.priority.rank, node.created_at, node.id)


def build_forest(nodes: list[Directive], roots: list[str]) -> list[TreeNode]:
    """Nest `nodes` under `roots`; a node reached twice (corrupt data) appears once."""
    by_id = {node.id: node for node in nodes}
    children: dict[str | None, list[str]] = {}
    for node in sorted(nodes, key=_order):
        children.setdefault(node.parent_id, []).append(node.id)
    seen: set[str] = set()

    def build(node_id: str, depth: int) -> TreeNode:
        seen.add(node_id)
        out = TreeNode(by_id[node_id])
        if depth < WALK_CAP:
            for child in children.get(node_id, []):
                if child not in seen:
                    out.children.append(build(child, depth + 1))
        return out

    return [build(root, 1) for root in roots if root not in seen]


async def realm_forest(conn: AsyncConnection, realm_id: str) -> list[TreeNode]:
    await realms.get(conn, realm_id)
    nodes = await directives.all_in_realm(conn, realm_id)
    roots = sorted((n for n in nodes if n.parent_id is None), key=_order)
    return build_forest(nodes, [root.id for root in roots])


async def subtree(conn: AsyncConnection, realm_id: str, directive_id: str) -> TreeNode:
    nodes = await directives.subtree_with_content(conn, realm_id, directive_id)
    if not nodes:
        raise NotFound(f"directive {directive_id!r} not found")
    return build_forest(nodes, [directive_id])[0]


@dataclass(frozen=True, slots=True)
class Diff:
    from_version: int
    to_version: int
    diff: str


async def diff(conn: AsyncConnection, realm_id: str, directive_id: str, old: int, new: int) -> Diff:
    a = await versions.get(conn, realm_id, directive_id, old)
    b = await versions.get(conn, realm_id, directive_id, new)
    text = unified_diff(a.content, b.content, f"v{old}", f"v{new}")
    return Diff(old, new, text)
