"""Read a multi-file Parquet dataset from moto (S3) with sygnify vs raw pyarrow / Polars, same run.

Run: ``.venv/bin/python benchmarks/bench_object_store.py [--files 8 --rows 200000 --rounds 5]``.
Each round times every reader once, in rotating order, against the same objects; the
report gives medians and sygnify's throughput relative to the raw library (goal: >= 0.9).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import boto3
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sygnify import CloudDataConnector
from tests.emulators.moto import moto_server

BUCKET = "bench"
KEYS = {"access_key_id": "bench", "secret_access_key": "bench-secret"}


def make_files(endpoint: str, files: int, rows: int) -> int:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

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
            readers: dict[str, Callable[[], int]] = {
                "raw pyarrow dataset": lambda: (
                    ds.dataset(f"{BUCKET}/data/", filesystem=raw_fs, format="parquet")
                    .to_table(columns=["id", "amount"])
                    .num_rows
                ),
                "sygnify dataset()": lambda: (
                    store.dataset("data/*.parquet").to_table(columns=["id", "amount"]).num_rows
                ),
                "sygnify stream()": lambda: sum(
                    b.num_rows for b in store.stream("data/*.parquet", columns=["id", "amount"])
                ),
                "raw polars scan_parquet": lambda: (
                    pl.scan_parquet(f"s3://{BUCKET}/data/*.parquet", storage_options=storage)
                    .select("id", "amount")
                    .collect()
                    .height
                ),
                "sygnify scan()": lambda: (
                    store.scan("data/*.parquet").select("id", "amount").collect().height
                ),
            }
            names = list(readers)
            timings: dict[str, list[float]] = {name: [] for name in names}
            expected = args.files * args.rows
            for round_number in range(args.rounds + 1):
                order = names[round_number % len(names) :] + names[: round_number % len(names)]
                for name in order:
                    started = time.perf_counter()
                    rows = readers[name]()
                    elapsed = time.perf_counter() - started
                    assert rows == expected, (name, rows)
                    if round_number:  # round 0 warms caches and connections
                        timings[name].append(elapsed)

    medians = {name: statistics.median(values) for name, values in timings.items()}
    print(f"{args.files} Parquet objects, {expected:,} rows, {size / 2**20:.1f} MiB on moto; "
          f"median of {args.rounds} rounds (columns id, amount)")  # fmt: skip
    for name in names:
        print(f"  {name:<26} {medians[name] * 1000:8.1f} ms")
    pairs = [("sygnify dataset()", "raw pyarrow dataset"), ("sygnify stream()", "raw pyarrow dataset"),
             ("sygnify scan()", "raw polars scan_parquet")]  # fmt: skip
    ok = True
    for ours, raw in pairs:
        ratio = medians[raw] / medians[ours]
        ok &= ratio >= 0.9
        print(
            f"  {ours} vs {raw}: {ratio:.2f}x raw throughput {'OK' if ratio >= 0.9 else 'SLOWER than 0.9x'}"
        )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
