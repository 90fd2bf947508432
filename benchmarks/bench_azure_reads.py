"""Read a multi-file Parquet dataset from Azurite with sygnify vs raw pyarrow / Polars / DuckDB, same run.

Run: ``.venv/bin/python benchmarks/bench_azure_reads.py [--files 8 --rows 200000 --rounds 15]``.

sygnify's Azure connector reads data (footers and pages) through the SDK, under its own
retry policy and breaker (``ObjectStoreFileSystem``), not pyarrow's ``AzureFileSystem``
(whose C++ SDK retries on its own, unbounded by the policy). This measures what that costs.
Every reader reads the same objects and the same two of four columns (``id``, ``amount``).
Each round times every reader once, in an order that rotates from round to round (so no
reader always runs first or right after another), after a warm-up round that also checks
that all readers return the same rows. The table gives medians with min/max, and each
sygnify path's throughput relative to the raw library doing the same work:

- ``dataset().to_table()`` vs ``pyarrow.dataset.dataset(...)`` over ``pyarrow.fs.AzureFileSystem``;
- ``stream(batch_size=B)`` vs raw ``to_batches(batch_size=B)`` (the same streaming work) and
  also vs raw ``to_table()`` (the raw library's fastest way to read everything);
- ``query("SELECT id, amount FROM tx")`` (a configured table) vs DuckDB over the raw
  pyarrow dataset (the same engine over the same Arrow scan);
- ``scan().collect()`` vs ``polars.scan_parquet("az://...")`` (Polars reads the data
  itself in both; sygnify also lists and checks the footers for schema drift).

The target (issue 13) is >= 0.9x raw for every pair; the script exits 1 when one is missed.
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

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from azure.storage.blob import BlobServiceClient

from sygnify import CloudDataConnector
from sygnify.connectors.azure_blob.connector import AzureBlobConnector
from tests.emulators.azurite import ACCOUNT_KEY, ACCOUNT_NAME, azurite_server

CONTAINER = "bench"
COLUMNS = ["id", "amount"]
TARGET = 0.9


def make_files(connection_string: str, files: int, rows: int) -> int:
    """Write ``files`` Parquet blobs of ``rows`` rows under ``data/``; returns their total size."""
    container = BlobServiceClient.from_connection_string(connection_string).create_container(CONTAINER)
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
        container.upload_blob(f"data/part-{i:03d}.parquet", buffer.getvalue(), overwrite=True)
    return total


def _batches_table(batches: object) -> pa.Table:
    return pa.Table.from_batches(list(batches))  # type: ignore[call-overload]


def _duckdb_query(dataset: ds.Dataset) -> pa.Table:
    with duckdb.connect() as database:
        database.register("tx", dataset)
        table: pa.Table = database.sql("SELECT id, amount FROM tx").to_arrow_table()
        return table


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

    with azurite_server(name="azurite-bench") as server:
        size = make_files(server.connection_string, args.files, args.rows)
        raw_fs = pafs.AzureFileSystem(
            ACCOUNT_NAME, account_key=ACCOUNT_KEY,
            blob_storage_authority=f"{server.host}:{server.port}", blob_storage_scheme="http",
            dfs_storage_authority=f"{server.host}:{server.port}", dfs_storage_scheme="http",
        )  # fmt: skip
        storage = {
            "account_name": ACCOUNT_NAME, "account_key": ACCOUNT_KEY,
            "endpoint": server.endpoint, "allow_http": "true",
        }  # fmt: skip
        with CloudDataConnector(environ={}) as connector:
            store = connector.connect(
                "azure_blob", container=CONTAINER, account_url=server.endpoint,
                account_name=ACCOUNT_NAME, account_key=ACCOUNT_KEY, tables={"tx": "data/*.parquet"},
            )  # fmt: skip
            assert isinstance(store, AzureBlobConnector)

            def raw_dataset() -> ds.Dataset:
                return ds.dataset(f"{CONTAINER}/data/", filesystem=raw_fs, format="parquet")

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
                "raw duckdb over pyarrow dataset": lambda: _duckdb_query(raw_dataset()),
                "sygnify query()": lambda: store.query("SELECT id, amount FROM tx"),
                "raw polars scan_parquet().collect()": lambda: (
                    pl.scan_parquet(f"az://{CONTAINER}/data/*.parquet", storage_options=storage)
                    .select(COLUMNS)
                    .collect()
                ),
                "sygnify scan().collect()": lambda: store.scan("data/*.parquet").select(COLUMNS).collect(),
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
        (names[1], names[0]),  # dataset().to_table()
        (names[3], names[2]),  # stream() vs to_batches()
        (names[3], names[0]),  # stream() vs to_table()
        (names[5], names[4]),  # query()
        (names[7], names[6]),  # scan().collect()
    ]
    print(
        f"{args.files} Parquet blobs, {expected_rows:,} rows, {size / 2**20:.1f} MiB on Azurite; "
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
