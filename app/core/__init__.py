"""Settings, database access and the per-process container."""
