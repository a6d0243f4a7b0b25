"""Several nodes on one PostgreSQL database: partitions of tenants and who owns each."""
