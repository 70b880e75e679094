"""What the server tells its operator: metrics, logs with request ids, optional traces.

docs/observability.md describes all three; docs/metrics.md lists every metric (a test checks
the table against /metrics both ways).
"""
