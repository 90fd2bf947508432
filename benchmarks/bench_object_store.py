"""Read a multi-file Parquet dataset from moto (S3) with sygnify vs raw pyarrow / Polars, same run.

Run: ``.venv/bin/python benchmarks/bench_object_store.py [--files 8 --rows 200000 --rounds 15]``.

Every reader reads the same objects and the same two columns (``id``, ``amount``). Each
round times every reader once, in an order that rotates from round to round (so no reader
always runs first or right after another), after a warm-up round that also checks that all
readers return the same rows. The table gives medians, and each sygnify path's throughput
relative to the raw library doing the same work:

- ``dataset().to_table()`` vs ``pyarrow.dataset.dataset(...).to_table()``;
- ``stream(batch_size=B)`` vs raw ``to_batches(batch_size=B)`` (the same streaming work) and
  also vs raw ``to_table()`` (the raw library's fastest way to read everything);
- ``scan().collect()`` vs ``polars.scan_parquet(...).collect()``;
- Delta read: ``scan("delta/")`` of a Delta table (found by its ``_delta_log/``) vs
  ``polars.scan_delta(...).collect()``; Delta append: ``write(format="delta")`` of one
  100k-row chunk vs ``deltalake.write_deltalake(mode="append")`` (each into its own table).

The target (issue 3) is >= 0.9x raw for every pair; the script exits 1 when one is missed.
"""

from __future__ import annotations

import argparse
import gc
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import boto3
import deltalake
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sygnify import CloudDataConnector
from sygnify.connectors.s3.connector import S3Connector
from tests.emulators.moto import moto_server

BUCKET = "bench"
KEYS = {"access_key_id": "bench", "secret_access_key": "bench-secret"}
COLUMNS = ["id", "amount"]
TARGET = 0.9


def make_files(endpoint: str, files: int, rows: int) -> int:
    """Write ``files`` Parquet objects of ``rows`` rows under ``data/``; returns their total size."""
    s3 = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=KEYS["access_key_id"], aws_secret_access_key=KEYS["secret_access_key"],
    )  # fmt: skip
    s3.create_bucket(Bucket=BUCKET)
    rng = np.random.default_rng(0)
    total = 0
    for i in range(files):
        table = pa.table(
            {
                "id": np.arange(i * rows, (i + 1) * rows, dtype=np.int64),
                "account": pa.array(rng.integers(0, 1000, rows)).cast(pa.string()),
                "amount": rng.normal(100, 20, rows),
                "flag": rng.integers(0, 2, rows).astype(bool),
            }
        )
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        total += buffer.tell()
        s3.put_object(Bucket=BUCKET, Key=f"data/part-{i:03d}.parquet", Body=buffer.getvalue())
    return total


def _batches_table(batches: object) -> pa.Table:
    return pa.Table.from_batches(list(batches))  # type: ignore[call-overload]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--rows", type=int, default=200_000, help="rows per file")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=100_000, help="stream()/to_batches() batch size")
    args = parser.parse_args()
    batch_size = args.batch_size

    with moto_server(name="moto-bench") as server:
        size = make_files(server.endpoint, args.files, args.rows)
        host = server.endpoint.removeprefix("http://")
        raw_fs = pafs.S3FileSystem(
            access_key=KEYS["access_key_id"], secret_key=KEYS["secret_access_key"],
            endpoint_override=host, scheme="http", region="us-east-1",
        )  # fmt: skip
        storage = {
            "aws_endpoint_url": server.endpoint, "aws_region": "us-east-1", "aws_allow_http": "true",
            "aws_access_key_id": KEYS["access_key_id"], "aws_secret_access_key": KEYS["secret_access_key"],
        }  # fmt: skip
        with CloudDataConnector(environ={}) as connector:
            store = connector.connect(
                "s3", bucket=BUCKET, endpoint_url=server.endpoint, region="us-east-1", **KEYS
            )
            assert isinstance(store, S3Connector)
            # The same rows as one Delta table, and a chunk that each Delta append round adds.
            everything = ds.dataset(f"{BUCKET}/data/", filesystem=raw_fs, format="parquet").to_table()
            deltalake.write_deltalake(f"s3://{BUCKET}/delta", everything, storage_options=storage)
            chunk = everything.slice(0, 100_000).select(COLUMNS)

            def raw_dataset() -> ds.Dataset:
                return ds.dataset(f"{BUCKET}/data/", filesystem=raw_fs, format="parquet")

            # Each reader returns what it read; timing covers listing, opening and reading.
            readers: dict[str, Callable[[], pa.Table | pl.DataFrame | int]] = {
                "raw pyarrow dataset().to_table()": lambda: raw_dataset().to_table(columns=COLUMNS),
                "sygnify dataset().to_table()": lambda: store.dataset("data/*.parquet").to_table(
                    columns=COLUMNS
                ),
                f"raw pyarrow to_batches({batch_size:,})": lambda: sum(
                    b.num_rows for b in raw_dataset().to_batches(columns=COLUMNS, batch_size=batch_size)
                ),
                f"sygnify stream({batch_size:,})": lambda: sum(
                    b.num_rows for b in store.stream("data/*.parquet", columns=COLUMNS, batch_size=batch_size)
                ),
                "raw polars scan_parquet().collect()": lambda: (
                    pl.scan_parquet(f"s3://{BUCKET}/data/*.parquet", storage_options=storage)
                    .select(COLUMNS)
                    .collect()
                ),
                "sygnify scan().collect()": lambda: store.scan("data/*.parquet").select(COLUMNS).collect(),
                "raw polars scan_delta().collect()": lambda: (
                    pl.scan_delta(f"s3://{BUCKET}/delta", storage_options=storage).select(COLUMNS).collect()
                ),
                "sygnify scan(Delta table).collect()": lambda: store.scan("delta/").select(COLUMNS).collect(),
            }
            # Writes: timed in the same interleaved rounds, not part of the rows check.
            writers: dict[str, Callable[[], object]] = {
                "raw deltalake write_deltalake(append)": lambda: deltalake.write_deltalake(
                    f"s3://{BUCKET}/append-raw", chunk, mode="append", storage_options=storage
                ),
                "sygnify write(format='delta', append)": lambda: store.write(
                    chunk, "append-ours/", format="delta", mode="append"
                ),
            }
            names = list(readers)
            expected_rows = args.files * args.rows
            expected_sum = expected_rows * (expected_rows - 1) // 2

            def raw_batches() -> pa.Table:
                return _batches_table(raw_dataset().to_batches(columns=COLUMNS, batch_size=batch_size))

            def our_batches() -> pa.Table:
                return _batches_table(store.stream("data/*.parquet", columns=COLUMNS, batch_size=batch_size))

            # The streaming readers' results are tables here, to compare rows; timing only counts them.
            check = {**readers, names[2]: raw_batches, names[3]: our_batches}
            for write in writers.values():  # round 0 for the writers: the tables exist
                write()
            readers.update(writers)
            for name in names:  # round 0: same data from every reader, caches and connections warm
                table = check[name]()
                arrow = table.to_arrow() if isinstance(table, pl.DataFrame) else table
                assert isinstance(arrow, pa.Table)
                id_sum = pc.sum(arrow.column("id")).as_py()
                assert (arrow.num_rows, arrow.column_names, id_sum) == (
                    expected_rows,
                    COLUMNS,
                    expected_sum,
                ), name

            names += list(writers)
            timings: dict[str, list[float]] = {name: [] for name in names}
            for round_number in range(args.rounds):
                shift = round_number % len(names)
                for name in names[shift:] + names[:shift]:
                    gc.collect()
                    started = time.perf_counter()
                    readers[name]()
                    timings[name].append(time.perf_counter() - started)

    medians = {name: statistics.median(values) for name, values in timings.items()}
    pairs = [
        (names[1], names[0]),
        (names[3], names[2]),
        (names[3], names[0]),
        (names[5], names[4]),
        (names[7], names[6]),  # Delta read
        (names[9], names[8]),  # Delta append
    ]
    print(
        f"{args.files} Parquet objects, {expected_rows:,} rows, {size / 2**20:.1f} MiB on moto; "
        f"columns {', '.join(COLUMNS)}; median of {args.rounds} interleaved rounds\n"
    )
    print("| reader | median ms | min ms | max ms |")
    print("|---|---:|---:|---:|")
    for name in names:
        values = timings[name]
        print(
            f"| {name} | {medians[name] * 1000:.1f} | {min(values) * 1000:.1f} | {max(values) * 1000:.1f} |"
        )
    print("\n| sygnify | raw | throughput vs raw (ratio of medians) | per-round median ratio | target |")
    print("|---|---|---:|---:|---|")
    ok = True
    for ours, raw in pairs:
        ratio = medians[raw] / medians[ours]
        paired = statistics.median(r / o for r, o in zip(timings[raw], timings[ours], strict=True))
        met = ratio >= TARGET
        ok &= met
        print(
            f"| {ours} | {raw} | {ratio:.2f}x | {paired:.2f}x | {'met' if met else f'MISSED (< {TARGET}x)'} |"
        )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
