"""The dr page."""
