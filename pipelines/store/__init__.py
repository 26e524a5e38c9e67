"""The DuckDB store: schema migrations and the single writer."""
