"""Atomic dataset writes vs the non-atomic write they replaced and raw pyarrow, on moto (S3), same run.

Run: ``.nox/tests/bin/python benchmarks/bench_dataset_writes.py [--rows 1000000 --rounds 7]``.

Writers, each writing the same table (hive-partitioned by ``region``, five partitions) to a
new prefix every round, timed from the call to its return:

- ``sygnify write(append)``: the atomic write (parts, then one commit object,
  :mod:`sygnify.io.commits`);
- ``sygnify write(overwrite)``: the same over an existing dataset (commit, then removal of
  the old parts);
- ``sygnify write(append, write_id=...)``: idempotent (one listing of the log first);
- ``non-atomic (previous write)`` and ``non-atomic overwrite (previous write)``: what
  ``write()`` did before, through the same connector: parts encoded locally, uploaded in
  place one by one, no commit (the overwrite listed the old keys, then deleted them);
- ``raw pyarrow write_dataset``: ``pyarrow.dataset.write_dataset`` to ``S3FileSystem``
  with hive partitioning (non-atomic).

Each round runs every writer once, in an order that rotates from round to round; the table
gives medians with min/max, and the throughput of each atomic write relative to the
non-atomic one doing the same (issue 13's target: >= 0.9x). The script exits 1 when one is missed.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from sygnify import CloudDataConnector
from sygnify.connectors.s3.connector import S3Connector
from sygnify.io.formats import write_parts
from tests.emulators.moto import moto_server

BUCKET = "bench-writes"
KEYS = {"access_key_id": "bench", "secret_access_key": "bench-secret"}
TARGET = 0.9
REGIONS = np.array(["eu", "us", "apac", "latam", "mea"])


def make_table(rows: int) -> pa.Table:
    rng = np.random.default_rng(0)
    return pa.table(
        {
            "id": np.arange(rows, dtype=np.int64),
            "region": REGIONS[rng.integers(0, len(REGIONS), rows)],
            "account": pa.array(rng.integers(0, 10_000, rows)).cast(pa.string()),
            "amount": rng.normal(100, 20, rows),
        }
    )


def non_atomic_write(store: S3Connector, table: pa.Table, prefix: str, *, overwrite: bool = False) -> None:
    """The dataset write sygnify did before commits: parts staged locally, uploaded in place
    (an overwrite listed the old keys first and deleted those not rewritten after)."""
    bucket = store.default_bucket
    assert bucket is not None
    previous = [info.key for info in store.iter_objects(bucket, prefix)] if overwrite else []
    new_keys = []
    with tempfile.TemporaryDirectory(prefix="bench-stage-") as staging:
        for path in write_parts(table, staging, "parquet", ["region"]):
            key = f"{prefix}{path.relative_to(staging).as_posix()}"
            with path.open("rb") as handle:
                store.put_stream(bucket, key, handle)
            new_keys.append(key)
    stale = sorted(set(previous) - set(new_keys))
    if stale:
        store.delete_keys(bucket, stale)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    table = make_table(args.rows)

    with moto_server(name="moto-bench-writes") as server:
        boto3.client(
            "s3", endpoint_url=server.endpoint, region_name="us-east-1",
            aws_access_key_id=KEYS["access_key_id"], aws_secret_access_key=KEYS["secret_access_key"],
        ).create_bucket(Bucket=BUCKET)  # fmt: skip
        raw_fs = pafs.S3FileSystem(
            access_key=KEYS["access_key_id"], secret_key=KEYS["secret_access_key"],
            endpoint_override=server.endpoint.removeprefix("http://"), scheme="http", region="us-east-1",
        )  # fmt: skip
        with CloudDataConnector(environ={}) as connector:
            store = connector.connect(
                "s3", bucket=BUCKET, endpoint_url=server.endpoint, region="us-east-1", **KEYS
            )
            assert isinstance(store, S3Connector)
            # The overwrite writer replaces a dataset written before each of its rounds (untimed).
            overwrite_targets: list[str] = []

            def fresh() -> str:
                return f"w-{uuid.uuid4().hex[:8]}/"

            def overwrite() -> None:
                store.write(table, overwrite_targets.pop(), mode="overwrite", partition_by=["region"])

            def old_overwrite() -> None:
                non_atomic_write(store, table, overwrite_targets.pop(), overwrite=True)

            writers: dict[str, Callable[[], object]] = {
                "non-atomic (previous write)": lambda: non_atomic_write(store, table, fresh()),
                "sygnify write(append)": lambda: store.write(table, fresh(), partition_by=["region"]),
                "sygnify write(append, write_id=...)": lambda: store.write(
                    table, fresh(), partition_by=["region"], write_id=uuid.uuid4().hex
                ),
                "non-atomic overwrite (previous write)": old_overwrite,
                "sygnify write(overwrite)": overwrite,
                "raw pyarrow write_dataset": lambda: ds.write_dataset(
                    table,
                    f"{BUCKET}/{fresh()}",
                    filesystem=raw_fs,
                    format="parquet",
                    partitioning=["region"],
                    partitioning_flavor="hive",
                    existing_data_behavior="overwrite_or_ignore",
                ),
            }
            names = list(writers)
            # Warm-up, and a check that the atomic write reads back whole.
            target = fresh()
            store.write(table, target, partition_by=["region"])
            assert store.scan(target).select("id").collect().height == args.rows
            timings: dict[str, list[float]] = {name: [] for name in names}
            for round_number in range(args.rounds):
                shift = round_number % len(names)
                for name in names[shift:] + names[:shift]:
                    if "overwrite" in name:
                        old = fresh()
                        store.write(table.slice(0, 1000), old, partition_by=["region"])
                        overwrite_targets.append(old)
                    gc.collect()
                    started = time.perf_counter()
                    writers[name]()
                    timings[name].append(time.perf_counter() - started)

    medians = {name: statistics.median(values) for name, values in timings.items()}
    print(
        f"{args.rows:,} rows ({table.nbytes / 2**20:.0f} MiB in Arrow), 5 hive partitions, Parquet, moto; "
        f"median of {args.rounds} interleaved rounds\n"
    )
    print("| writer | median ms | min ms | max ms |")
    print("|---|---:|---:|---:|")
    for name in names:
        values = timings[name]
        print(
            f"| {name} | {medians[name] * 1000:.0f} | {min(values) * 1000:.0f} | {max(values) * 1000:.0f} |"
        )
    print("\n| atomic write | vs | throughput (ratio of medians) | per-round median ratio | target |")
    print("|---|---|---:|---:|---|")
    ok = True
    pairs = [(names[1], names[0]), (names[2], names[0]), (names[4], names[3])]
    for ours, baseline in pairs:
        ratio = medians[baseline] / medians[ours]
        paired = statistics.median(b / o for b, o in zip(timings[baseline], timings[ours], strict=True))
        met = ratio >= TARGET
        ok &= met
        print(f"| {ours} | {baseline} | {ratio:.2f}x | {paired:.2f}x | {'met' if met else 'MISSED'} |")
    raw = names[-1]
    print(f"| sygnify write(append) | {raw} | {medians[raw] / medians[names[1]]:.2f}x | | (reference) |")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
