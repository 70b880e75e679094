"""docs/benchmarks.png: the figures that have a §5 target, each against its bound."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _colour(figure: dict[str, Any]) -> str:
    return "tab:green" if figure["met"] else "tab:red"


def _short(name: str) -> str:
    for cut in (": throughput", ": CAS/s"):
        name = name.replace(cut, "")
    return name


def chart(figs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def kind(name: str) -> list[dict[str, Any]]:
        return [f for f in figs if f["kind"] == name and f["bound"] is not None]

    panels = [
        (
            kind("throughput"),
            "Ratios, Charter / baseline or peer (same run)",
            "ratio (black: §5 floor)",
            False,
        ),
        (kind("latency"), "Latency against absolute bounds", "ms, log (black: §5 bound)", True),
        (kind("scale"), "Large realm / 100-node realm, p50", "ratio (black: 1.2x)", False),
        (kind("memory"), "Server memory with the watchers held", "MB (black: §5 bound)", False),
    ]
    panels = [p for p in panels if p[0]]
    if not panels:
        return
    heights = [max(2.0, 0.35 * len(p[0]) + 1.2) for p in panels]
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(12, sum(heights)), height_ratios=heights, squeeze=False
    )
    for ax, (items, title, xlabel, log) in zip(axes[:, 0], panels, strict=True):
        ys = list(range(len(items)))
        if items[0]["kind"] in ("throughput", "scale"):
            ax.barh(ys, [f["ratio"] for f in items], color=[_colour(f) for f in items])
        else:
            ax.barh(
                [y - 0.2 for y in ys],
                [f["charter"] for f in items],
                height=0.4,
                color=[_colour(f) for f in items],
                label="Charter",
            )
            ax.barh(
                [y + 0.2 for y in ys],
                [f["baseline"] or 0 for f in items],
                height=0.4,
                color="tab:gray",
                label="baseline",
            )
            ax.legend(fontsize=7, loc="lower right")
        for y, f in zip(ys, items, strict=True):
            ax.plot([f["bound"], f["bound"]], [y - 0.45, y + 0.45], color="black", linewidth=2)
        ax.set_yticks(ys, [_short(f["figure"]) for f in items], fontsize=7)
        ax.invert_yaxis()
        if log:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
