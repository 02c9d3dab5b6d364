"""Local backends: the real servers the product runs against, started on loopback."""
