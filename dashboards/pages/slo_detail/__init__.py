"""The slo detail page."""
