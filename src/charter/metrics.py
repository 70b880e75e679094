"""A few process counters, exposed in the Prometheus text format at /metrics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable


class Metrics:
    def __init__(self) -> None:
        self.counters: Counter[tuple[str, str]] = Counter()  # (name, label value) -> count
        self.gauges: dict[str, Callable[[], float]] = {}

    def count(self, name: str, label: str = "") -> None:
        self.counters[(name, label)] += 1

    def render(self) -> str:
        lines: list[str] = []
        for (name, label), value in sorted(self.counters.items()):
            labels = f'{{source="{label}"}}' if label else ""
            lines.append(f"charter_{name}_total{labels} {value}")
        for name, read in sorted(self.gauges.items()):
            lines.append(f"charter_{name} {read()}")
        return "\n".join(lines) + "\n"
