"""The inventory API (FastAPI) and its stream workers: the workload the control plane protects."""
