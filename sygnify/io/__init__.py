"""Files, formats, Arrow helpers and the sandboxed DuckDB that every connector and mode shares."""
