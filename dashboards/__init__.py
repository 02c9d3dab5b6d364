"""The Dash operator console: reads the control-plane API with one token (``python -m
dashboards``); see ``dashboards/README.md``."""
