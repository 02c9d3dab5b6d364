"""Settings and small shared pieces of the control plane service."""
