"""Actuators: what changes the number of running replicas (local gunicorn, Kubernetes)."""
