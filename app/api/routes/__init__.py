"""One router per resource, all under ``/api/v1`` (health probes and /metrics at the root)."""
