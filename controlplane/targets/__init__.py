"""Target checks: the deployment against its capacity and DR policies."""
