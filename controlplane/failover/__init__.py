"""PostgreSQL failover: detection, candidate choice, fencing, promotion, write probe."""
