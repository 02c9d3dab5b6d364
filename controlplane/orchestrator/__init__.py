"""Orchestrator adapters (Kubernetes, local gunicorn) behind one Protocol."""
