"""Alertmanager side of the control plane: webhook models and receiver, generated rule files
(``rules/``) and the Alertmanager configuration (``alertmanager.yml``)."""
