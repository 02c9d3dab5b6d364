"""Test configuration shared by every suite: the real-backend fixtures live in tests/support."""

pytest_plugins = ["tests.support.backends"]
