"""The benchmark suite behind `scripts/bench` (DESIGN §5): scenarios, baselines, report."""
