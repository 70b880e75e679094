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

from charter.cli._context import InvalidFile
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
    directives: list[FileNode] = []


def walk(
    nodes: list[FileNode], parent: FileNode | None = None
) -> Iterator[tuple[FileNode, FileNode | None]]:
    """Every node with its parent, parents first (pre-order)."""
    for node in nodes:
        yield node, parent
        yield from walk(node.children, node)


def load(text: str, source: str) -> TreeFile:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidFile(f"{source}: not valid YAML: {exc}") from exc
    try:
        tree = msgspec.convert(raw if raw is not None else {}, TreeFile)
    except msgspec.ValidationError as exc:
        raise InvalidFile(f"{source}: {exc}") from exc
    seen: set[str] = set()
    for node, parent in walk(tree.directives):
        if node.key in seen:
            raise InvalidFile(f"{source}: the key {node.key!r} appears twice")
        seen.add(node.key)
        parent_level = parent.level if parent else None
        if parent_level is None and node.level != "realm":
            raise InvalidFile(f"{source}: {node.key!r} is a {node.level} node, so needs a parent")
        if parent_level is not None and parent_level not in ALLOWED_PARENTS[node.level]:
            raise InvalidFile(
                f"{source}: {node.key!r} is a {node.level} node; it cannot sit under the "
                f"{parent_level} node {parent.key if parent else ''!r}"
            )
    return tree


class _Dumper(yaml.SafeDumper):
    """Block style, and multi-line strings as literal blocks: readable bodies in git."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(tree: TreeFile) -> str:
    document = {"realm": tree.realm, "directives": [_plain(n) for n in tree.directives]}
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
