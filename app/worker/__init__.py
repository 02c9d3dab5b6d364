"""Stream workers: apply queued stock movements to PostgreSQL in batches."""
