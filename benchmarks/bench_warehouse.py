"""Rows/s of sygnify's ``stream()`` against the raw SDK's Arrow fetch, in the same run.

Starts bqemulator (Storage Read API over gRPC) and a fakesnow server from their own venvs
(see tests/emulators), loads ``--rows`` rows, then alternates raw and sygnify reads
``--repeat`` times and reports the best rate of each and their ratio (target: >= 0.9x)::

    .venv/bin/python -m benchmarks.bench_warehouse --rows 1000000 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

import pyarrow as pa

from sygnify import CloudDataConnector


def _rate(read: Callable[[], Iterable[Any]], expected: int) -> float:
    started = time.perf_counter()
    rows = 0
    for batch in read():
        rows += batch.num_rows
    elapsed = time.perf_counter() - started
    if rows != expected:
        raise RuntimeError(f"read {rows} rows, expected {expected}")
    return rows / elapsed


def _compare(
    name: str, raw: Callable[[], Iterable[Any]], ours: Callable[[], Iterable[Any]], rows: int, repeat: int
) -> dict[str, Any]:
    raw_rates, our_rates = [], []
    for _ in range(repeat):  # interleaved so that drift on a shared machine hits both alike
        raw_rates.append(_rate(raw, rows))
        our_rates.append(_rate(ours, rows))
    result = {
        "connector": name,
        "rows": rows,
        "raw_rows_per_s": round(max(raw_rates)),
        "sygnify_rows_per_s": round(max(our_rates)),
        "ratio": round(max(our_rates) / max(raw_rates), 3),
    }
    print(json.dumps(result))
    return result


def bench_bigquery(rows: int, repeat: int, batch_size: int) -> dict[str, Any]:
    from tests.emulators.bqemulator import running_bqemulator

    with running_bqemulator() as emulator, CloudDataConnector(environ={}) as connector:
        bq: Any = connector.connect(
            "bigquery",
            project=emulator.project,
            anonymous=True,
            endpoint=emulator.endpoint,
            storage_endpoint=f"http://{emulator.grpc_endpoint}",
        )
        bq.client.create_dataset("bench")
        bq.query(
            "CREATE TABLE bench.rows AS SELECT x AS id, x * 0.5 AS amount, CAST(x AS STRING) AS label "
            "FROM UNNEST(GENERATE_ARRAY(1, @n)) AS x",
            {"n": rows},
        )
        table_id = f"{emulator.project}.bench.rows"

        def raw() -> Iterable[pa.RecordBatch]:
            batches: Iterable[pa.RecordBatch] = bq.client.list_rows(table_id).to_arrow_iterable(
                bqstorage_client=bq._clients.storage
            )
            return batches

        def ours() -> Iterable[pa.RecordBatch]:
            batches: Iterable[pa.RecordBatch] = bq.stream("bench.rows", batch_size=batch_size)
            return batches

        return _compare("bigquery (Storage Read API, gRPC)", raw, ours, rows, repeat)


def bench_snowflake(rows: int, repeat: int, batch_size: int) -> dict[str, Any]:
    import snowflake.connector

    from tests.emulators.fakesnow import running_fakesnow

    with running_fakesnow() as server, CloudDataConnector(environ={}) as connector:
        options: dict[str, Any] = {**server.connect_options(), "database": "BENCH", "schema": "PUBLIC"}
        sf: Any = connector.connect("snowflake", **options)
        sf.execute("CREATE DATABASE IF NOT EXISTS BENCH")
        sf.execute("CREATE SCHEMA IF NOT EXISTS BENCH.PUBLIC")
        sf.execute(
            "CREATE TABLE BENCH.PUBLIC.ROWS_T AS SELECT range AS id, range * 0.5 AS amount, "
            "CAST(range AS VARCHAR) AS label FROM range(?)",
            [rows],
        )
        sql = "SELECT * FROM BENCH.PUBLIC.ROWS_T"
        raw_connection = snowflake.connector.connect(**options)

        def raw() -> Iterable[pa.Table]:
            cursor = raw_connection.cursor()
            cursor.execute(sql)
            batches: Iterable[pa.Table] = cursor.fetch_arrow_batches()
            return batches

        def ours() -> Iterable[pa.RecordBatch]:
            batches: Iterable[pa.RecordBatch] = sf.stream(sql, batch_size=batch_size)
            return batches

        try:
            return _compare("snowflake (fakesnow server)", raw, ours, rows, repeat)
        finally:
            raw_connection.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=100_000)
    parser.add_argument("--only", choices=["bigquery", "snowflake"])
    args = parser.parse_args(argv)
    if args.only in (None, "bigquery"):
        bench_bigquery(args.rows, args.repeat, args.batch_size)
    if args.only in (None, "snowflake"):
        bench_snowflake(args.rows, args.repeat, args.batch_size)


if __name__ == "__main__":
    main()
