"""Domain services (no HTTP here): catalog, stock, reservations, movements, apply planning."""
