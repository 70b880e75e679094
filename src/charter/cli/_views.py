"""How the CLI shows things to people: trees, directives, histories, prompts, events."""

from __future__ import annotations

from collections.abc import Iterable

from charter.cli._style import PRIORITY_COLOUR, STATUS_COLOUR, Style
from charter.client import models as m


def node_line(node: m.TreeNode | m.Directive, style: Style) -> str:
    """`Team: Engineering (Active) · high · owner lead · v3`."""
    head = f"{node.level.capitalize()}: {style(node.title, 'bold')}"
    status = style(f"({node.status.capitalize()})", STATUS_COLOUR.get(node.status, ""))
    parts = [f"{head} {status}", style(node.priority, PRIORITY_COLOUR.get(node.priority, ""))]
    if node.owner_agent_id:
        parts.append(f"owner {style(node.owner_agent_id, 'magenta')}")
    if node.active_version is None:
        parts.append(style("deactivated", "red"))
    else:
        latest = f"/{node.latest_version}" if node.latest_version != node.active_version else ""
        parts.append(f"v{node.active_version}{latest}")
    line = " · ".join(parts)
    if node.key:
        line += "  " + style(node.key, "dim")
    return line


def tree_lines(forest: m.Forest, style: Style) -> Iterable[str]:
    for root in forest.roots:
        yield node_line(root, style)
        yield from _children(root, "", style)


def _children(node: m.TreeNode, prefix: str, style: Style) -> Iterable[str]:
    for index, child in enumerate(node.children):
        last = index == len(node.children) - 1
        branch, extend = ("└── ", "    ") if last else ("├── ", "│   ")
        yield style(prefix + branch, "dim") + node_line(child, style)
        yield from _children(child, prefix + extend, style)


def directive_lines(d: m.Directive, style: Style) -> Iterable[str]:
    yield node_line(d, style)
    fields = [
        ("id", d.id),
        ("key", d.key or "-"),
        ("parent", d.parent_id or "-"),
        ("revision", str(d.revision)),
        ("versions", f"active {d.active_version or '-'}, latest {d.latest_version}"),
        ("mode", d.injection_mode),
        ("updated", d.updated_at.isoformat(timespec="seconds")),
    ]
    if d.metadata:
        fields.append(("metadata", ", ".join(f"{k}={v!r}" for k, v in d.metadata.items())))
    for name, value in fields:
        yield f"  {style(name.ljust(9), 'dim')}{value}"
    yield ""
    yield d.body


def history_lines(page: m.HistoryPage, style: Style) -> Iterable[str]:
    for e in page.items:
        who = e.actor_name or e.actor
        version = _rollout_detail(e) or (f" v{e.version}" if e.version is not None else "")
        when = e.occurred_at.isoformat(timespec="seconds")
        why = f" — {e.message}" if e.message else ""
        kind = e.type.removeprefix("directive.")
        yield f"{style(f'#{e.seq}', 'dim')} {when} {style(kind, 'cyan')}{version} by {who}{why}"


def _rollout_detail(e: m.HistoryEntry) -> str | None:
    """A rollout event names its candidate (the entry's `version` is the active one)."""
    p = e.payload
    candidate = p.get("version")
    if not e.type.startswith("directive.rollout_") or not isinstance(candidate, int):
        return None
    if e.type == "directive.rollout_aborted":
        return f" v{candidate} ({p.get('reason', 'operator')})"
    percent = p.get("percent")
    if not isinstance(percent, (int, float)):
        return f" v{candidate}"
    detail = f" v{candidate} to {percent:g} %"
    pinned = p.get("pinned")
    if isinstance(pinned, int) and pinned:
        detail += f" + {pinned} pinned"
    was = p.get("from_percent")
    if isinstance(was, (int, float)) and was != percent:
        detail += f" (was {was:g} %)"
    return detail


def event_line(e: m.Event, style: Style) -> str:
    when = e.occurred_at.isoformat(timespec="seconds")
    version = f" v{e.version}" if e.version is not None else ""
    agents = f" → {', '.join(e.affected_agents)}" if e.affected_agents else ""
    kind = style(e.type, "cyan")
    return (
        f"{style(f'#{e.seq}', 'dim')} {when} {kind} {e.directive_id}{version} by {e.actor}{agents}"
    )


def prompt_lines(p: m.Prompt, style: Style) -> Iterable[str]:
    stale = style(" (stale: the server could not be reached)", "yellow") if p.stale else ""
    yield style(f"{p.agent_id} · {p.composition_id} · {p.injection_mode}", "dim") + stale
    for layer in p.layers:
        version = f"v{layer.version}" if layer.version is not None else "no text"
        if layer.arm is not None:
            version += f", {layer.arm}"
        yield style(f"  {'  ' * (layer.depth - 1)}{layer.level}: {layer.title} ({version})", "dim")
    yield ""
    yield p.text
