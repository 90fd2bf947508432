"""``pip install "sygnify[postgres]"`` alone queries, writes and scans PostgreSQL.

Against this machine's PostgreSQL server (127.0.0.1:5432, trust auth), with the ADBC driver.
In the ``postgres``-only session (``SYGNIFY_EXTRA_ONLY=postgres``: sygnify[postgres] and
pytest, nothing else) it also checks that no other extra's packages are there.
"""

from __future__ import annotations

import socket
import uuid

import polars as pl
import pyarrow as pa
import pytest

from sygnify import CloudDataConnector
from sygnify.connectors.postgres import PostgresConnector
from tests.extras._only import check_alone, only_extra
from tests.services import require

pytestmark = pytest.mark.emulator

HOST, PORT = "127.0.0.1", 5432


def reachable() -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((HOST, PORT)) == 0


@pytest.mark.skipif(only_extra() != "postgres", reason="only in the postgres-only environment")
def test_the_environment_holds_the_postgres_extra_alone() -> None:
    check_alone("postgres")


def test_query_write_and_scan_with_the_postgres_extra() -> None:
    require(reachable(), f"PostgreSQL is not reachable at {HOST}:{PORT}")
    table = f"t_{uuid.uuid4().hex[:10]}"
    with CloudDataConnector(environ={}) as connector:
        pg = connector.connect("postgres", host=HOST, port=PORT, user="postgres", dbname="postgres")
        assert isinstance(pg, PostgresConnector)
        try:
            assert pg.query("SELECT 1 AS one, 'a' AS letter").to_pylist() == [{"one": 1, "letter": "a"}]
            pg.write(pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]}), table)
            assert pg.query(f"SELECT name FROM {table} WHERE id > $1 ORDER BY id", [1]).to_pylist() == [
                {"name": "b"},
                {"name": "c"},
            ]
            frame = pg.scan(table).filter(pl.col("id") < 3).select("name").collect()
            assert sorted(frame["name"].to_list()) == ["a", "b"]
        finally:
            pg.execute(f"DROP TABLE IF EXISTS {table}")
