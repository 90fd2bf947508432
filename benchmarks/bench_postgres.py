"""PostgreSQL read speed: sygnify's postgres connector beside ConnectorX and ADBC, in one run.

Creates a database ``sygnify_bench_<random>`` on the server (dropped afterwards) with a
``--rows``-row table (``id bigint, account text, amount float8, ts timestamptz, flag bool``),
then runs ``--rounds`` interleaved rounds (the order rotates each round, so drift on a
shared machine hits every contender alike) of:

- ConnectorX ``read_sql(..., return_type="arrow")``, single-stream and with
  ``partition_on="id", partition_num=2``;
- ADBC ``cursor.execute(sql); cursor.fetch_arrow_table()`` on a connection opened once;
- sygnify ``query()``, ``stream()`` (default batch size) and ``scan().collect()``.

It prints the median seconds, the spread ((max - min) / median) and each contender's speed
as a multiple of the faster raw library (the one with the lower median): the median over
rounds of that library's time over the contender's time in the same round, which a busy
shared machine disturbs far less than a ratio of medians. It exits with status 1 when
sygnify's ``query()`` is below ``--target`` (0.9) of it::

    .nox/tests/bin/python -m benchmarks.bench_postgres --rows 5000000 --rounds 5

Needs ``pip install 'sygnify[postgres,bench]'`` and a server (default 127.0.0.1:5432, user
postgres, trust auth).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import adbc_driver_postgresql.dbapi as adbc  # type: ignore[import-untyped]
import connectorx as cx

from sygnify import CloudDataConnector

TABLE = "bench_rows"
SQL = f"SELECT * FROM {TABLE}"
RAW = ("connectorx", "connectorx partition_num=2", "adbc fetch_arrow_table")


def _uri(args: argparse.Namespace, dbname: str) -> str:
    return f"postgresql://{args.user}@{args.host}:{args.port}/{dbname}"


def _admin(args: argparse.Namespace, sql: str, dbname: str = "postgres") -> None:
    with adbc.connect(_uri(args, dbname), autocommit=True) as connection, connection.cursor() as cursor:
        cursor.execute(sql)


def _create_table(args: argparse.Namespace, dbname: str) -> None:
    _admin(
        args,
        f"CREATE TABLE {TABLE} AS SELECT i::bigint AS id, 'acct-' || (i % 1000) AS account, "
        "(i % 100000) * 0.37::float8 AS amount, "
        "timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second' AS ts, (i % 3 = 0) AS flag "
        f"FROM generate_series(1, {int(args.rows)}) AS i",
        dbname,
    )
    _admin(args, f"VACUUM ANALYZE {TABLE}", dbname)


def _contenders(args: argparse.Namespace, dbname: str, pg: Any, raw: Any) -> dict[str, Callable[[], int]]:
    uri = _uri(args, dbname)

    def adbc_table() -> int:
        with raw.cursor() as cursor:
            cursor.execute(SQL)
            return int(cursor.fetch_arrow_table().num_rows)

    return {
        "connectorx": lambda: cx.read_sql(uri, SQL, return_type="arrow").num_rows,
        "connectorx partition_num=2": lambda: (
            cx.read_sql(uri, SQL, return_type="arrow", partition_on="id", partition_num=2).num_rows
        ),
        "adbc fetch_arrow_table": adbc_table,
        "sygnify query()": lambda: pg.query(SQL).num_rows,
        "sygnify stream()": lambda: sum(batch.num_rows for batch in pg.stream(TABLE)),
        "sygnify scan().collect()": lambda: pg.scan(TABLE).collect().height,
    }


def run(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    dbname = f"sygnify_bench_{uuid.uuid4().hex[:8]}"
    _admin(args, f"CREATE DATABASE {dbname}")
    try:
        started = time.perf_counter()
        _create_table(args, dbname)
        print(f"created {args.rows:,} rows in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        with (
            CloudDataConnector(environ={}) as connector,
            adbc.connect(_uri(args, dbname), autocommit=True) as raw,
        ):
            pg = connector.connect(
                "postgres", name="bench", host=args.host, port=args.port, user=args.user, dbname=dbname
            )
            contenders = _contenders(args, dbname, pg, raw)
            names = list(contenders)
            times: dict[str, list[float]] = {name: [] for name in names}
            for round_index in range(args.rounds):
                shift = round_index % len(names)
                for name in names[shift:] + names[:shift]:
                    begun = time.perf_counter()
                    rows = contenders[name]()
                    times[name].append(time.perf_counter() - begun)
                    if rows != args.rows:
                        raise RuntimeError(f"{name} read {rows} rows, expected {args.rows}")
                print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr)
            pg.close()
    finally:
        _admin(args, f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
    medians = {name: statistics.median(values) for name, values in times.items()}
    faster_raw = min(RAW, key=medians.__getitem__)
    return {
        name: {
            "median_s": medians[name],
            "spread": (max(values) - min(values)) / medians[name],
            "rows_per_s": args.rows / medians[name],
            # Paired by round: each round's contenders ran back to back, under the same load.
            "x_faster_raw": statistics.median(
                raw / ours for raw, ours in zip(times[faster_raw], values, strict=True)
            ),
        }
        for name, values in times.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5432)
    parser.add_argument("--user", default="postgres")
    parser.add_argument("--target", type=float, default=0.9, help="least query()/faster-raw speed ratio")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args(argv)
    results = run(args)
    print(f"{'contender':<28} {'median s':>9} {'spread':>7} {'rows/s':>12} {'x faster raw':>13}")
    for name, result in results.items():
        print(
            f"{name:<28} {result['median_s']:>9.3f} {result['spread']:>6.0%} "
            f"{result['rows_per_s']:>12,.0f} {result['x_faster_raw']:>12.2f}x"
        )
    if args.json:
        print(json.dumps(results))
    ratio = results["sygnify query()"]["x_faster_raw"]
    if ratio < args.target:
        print(
            f"sygnify query() is {ratio:.2f}x the faster raw library, below {args.target}x", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
