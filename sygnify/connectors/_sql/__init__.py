"""What the SQL connectors share: connection pool, scan pushdown and the stream/scan/write skeleton."""
