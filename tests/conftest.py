"""Test configuration shared by every suite: the real-backend fixtures and the figures recorder
live in tests/support."""

pytest_plugins = ["tests.support.backends", "tests.support.figures"]
