"""The process's metrics: see charter.observability.metrics (kept here for its importers)."""

from __future__ import annotations

from charter.observability.metrics import Metrics

__all__ = ["Metrics"]
