"""What the SQL connectors share, so that a SQL connector is mostly declarations.

- :mod:`~sygnify.connectors._sql.connector`: ``SqlConnector``, the query/stream/scan/write
  skeleton (a connector declares its dialect, how to connect, run, bulk-load and map errors);
- :mod:`~sygnify.connectors._sql.pool`: ``ConnectionPool`` of DB-API connections;
- :mod:`~sygnify.connectors._sql.params`: ``bind_params``, ``?`` / ``:name`` / ``$name`` to the
  driver's placeholder style (values are always bound by the driver);
- :mod:`~sygnify.connectors._sql.names`: ``parse_table_name``, validated and quoted table names;
- :mod:`~sygnify.connectors._sql.scan`: the Polars ``scan()`` with projection, predicate and
  limit pushdown (``SqlDialect``, ``Pushdown``, ``scan_sql_table``).
"""
