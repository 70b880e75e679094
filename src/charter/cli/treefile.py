"""The declarative tree file: directives nested by parent, matched by `key`.

It holds only what an operator declares (DESIGN §3): no ids, revisions, versions or
timestamps, so an export diffs cleanly in git and applying it unchanged changes nothing.
Fields left out take the API's defaults.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import yaml

from charter.cli._context import InvalidFile, an
from charter.client import limits
from charter.client import models as m
from charter.client.vocabulary import ALLOWED_PARENTS


class FileNode(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    key: str
    level: m.Level
    title: str
    body: str
    status: m.Status = "active"
    priority: m.Priority = "normal"
    owner_agent_id: str | None = None
    injection_mode: m.InjectionMode = "system_first"
    metadata: dict[str, Any] = {}
    active: bool = True  # false: deactivated (kept, contributing no text)
    children: list[FileNode] = []


class TreeFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    realm: str | None = None
    # The realm's default template variables (DESIGN §9); None: the file leaves them alone.
    variables: dict[str, str] | None = None
    directives: list[FileNode] = []


def walk(
    nodes: list[FileNode], parent: FileNode | None = None
) -> Iterator[tuple[FileNode, FileNode | None]]:
    """Every node with its parent, parents first (pre-order); iterative, for any depth."""
    stack = [(node, parent) for node in reversed(nodes)]
    while stack:
        node, up = stack.pop()
        yield node, up
        stack.extend((child, node) for child in reversed(node.children))


class _Loader(yaml.SafeLoader):
    """YAML's safe subset, without aliases and without implicit timestamps.

    A tree file needs no aliases, and they are how a hostile file hurts: one that points back
    at its own ancestor makes a recursive document, and a few nested ones an exponential one
    ("billion laughs"). An unquoted date stays a string, as the API would send it back.
    """

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in a tree file", event.start_mark
            )
        node: yaml.Node | None = super().compose_node(parent, index)  # type: ignore[arg-type]
        return node


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load(text: str, source: str) -> TreeFile:
    """The file, checked as the server would check it: structure, hierarchy and limits.

    Raises InvalidFile (never anything else) for a file that cannot be applied as it stands.
    """
    try:
        raw = yaml.load(text, Loader=_Loader)  # a SafeLoader
        _refuse_operations(raw, source)
        tree = msgspec.convert(raw if raw is not None else {}, TreeFile)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        what = exc.problem or exc.context or "not valid YAML"
        raise InvalidFile(f"{where}: not valid YAML: {what}") from exc
    except yaml.YAMLError as exc:
        raise InvalidFile(f"{source}: not valid YAML: {exc}") from exc
    except msgspec.ValidationError as exc:
        raise InvalidFile(f"{source}: {exc}") from exc
    except RecursionError as exc:
        raise InvalidFile(f"{source}: nested too deeply to be a tree file") from exc
    seen: set[str] = set()
    depth: dict[int, int] = {}
    problems: list[str] = []
    for node, parent in walk(tree.directives):
        if node.key in seen:
            raise InvalidFile(f"{source}: the key {node.key!r} appears twice")
        seen.add(node.key)
        parent_level = parent.level if parent else None
        if parent_level is None and node.level != "realm":
            raise InvalidFile(f"{source}: {node.key!r} is {an(node.level)} node, so needs a parent")
        if parent_level is not None and parent_level not in ALLOWED_PARENTS[node.level]:
            raise InvalidFile(
                f"{source}: {node.key!r} is {an(node.level)} node; it cannot sit under the "
                f"{parent_level} node {parent.key if parent else ''!r}"
            )
        depth[id(node)] = depth[id(parent)] + 1 if parent else 1
        problems.extend(f"{node.key!r}: {problem}" for problem in _node_problems(node))
        if depth[id(node)] == limits.DEFAULT_MAX_DEPTH + 1:
            problems.append(
                f"{node.key!r}: the tree would be deeper than {limits.DEFAULT_MAX_DEPTH} levels"
            )
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise InvalidFile(
            f"{source}: {len(problems)} problem(s) the server would refuse:\n  {shown}{more}"
        )
    return tree


# Releases are operations on a running fleet, not state a file declares (DESIGN §8): a file
# that names one is refused with the command to use, never half-applied.
_OPERATIONS = {
    "rollout": "charter rollout start|set|promote|abort",
    "rollouts": "charter rollout start|set|promote|abort",
    "schedule": "charter schedule add|list|cancel",
    "schedules": "charter schedule add|list|cancel",
}


def _refuse_operations(raw: Any, source: str) -> None:
    """Refuse a file whose top level or any node names a rollout or a schedule."""
    stack: list[tuple[Any, str]] = [(raw, "the file")]
    while stack:
        item, where = stack.pop()
        if not isinstance(item, dict):
            continue
        for word, command in _OPERATIONS.items():
            if word in item:
                raise InvalidFile(
                    f"{source}: {where} names {word!r}: rollouts and schedules are operations, "
                    f"not declarations, so apply does not make them; use `{command}`"
                )
        for field in ("directives", "children"):
            nodes = item.get(field)
            if isinstance(nodes, list):
                stack.extend(
                    (node, repr(node.get("key")) if isinstance(node, dict) else "a node")
                    for node in nodes
                )


def _node_problems(node: FileNode) -> list[str]:
    problems = limits.key_problems(node.key)
    problems += limits.title_problems(node.title)
    problems += limits.body_problems(node.body)
    if node.owner_agent_id is not None:
        problems += limits.agent_id_problems(node.owner_agent_id)
    problems += limits.metadata_problems(node.metadata)
    return problems


class _Dumper(yaml.SafeDumper):
    """Block style, and multi-line strings as literal blocks: readable bodies in git.

    Never an alias: `load` refuses them.
    """

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(tree: TreeFile) -> str:
    document: dict[str, Any] = {"realm": tree.realm}
    if tree.variables:
        document["variables"] = dict(sorted(tree.variables.items()))
    document["directives"] = [_plain(n) for n in tree.directives]
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def _plain(node: FileNode) -> dict[str, Any]:
    """The node's fields in a fixed order, defaults left out."""
    out: dict[str, Any] = {"key": node.key, "level": node.level, "title": node.title}
    defaults = FileNode(key="", level="realm", title="", body="")
    for name in ("status", "priority", "owner_agent_id", "injection_mode", "metadata", "active"):
        value = getattr(node, name)
        if value != getattr(defaults, name):
            out[name] = value
    out["body"] = node.body
    if node.children:
        out["children"] = [_plain(c) for c in node.children]
    return out
