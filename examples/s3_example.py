"""Objects and datasets on S3 (or any S3-compatible endpoint) with the s3 connector.

Run against AWS with your usual credentials:    python examples/s3_example.py BUCKET
or against a local moto/MinIO endpoint:          python examples/s3_example.py BUCKET http://127.0.0.1:5000
(with an endpoint, the example uses the dummy keys "example"/"example-secret" that emulators accept).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import polars as pl

from sygnify import CloudDataConnector
from sygnify.demo import generate_transactions


def main(bucket: str, endpoint: str | None = None) -> None:
    options: dict[str, object] = {"bucket": bucket, "tables": {"tx": "transactions/"}}
    if endpoint:
        options.update(
            endpoint_url=endpoint,
            region="us-east-1",
            access_key_id="example",
            secret_access_key="example-secret",
        )
    with CloudDataConnector() as connector:
        lake = connector.connect("s3", name="lake", **options)
        lake.create_bucket()  # exist_ok by default

        written = lake.write(generate_transactions(50_000), "transactions/", mode="overwrite")
        print(f"wrote {written.rows} rows to {len(written.paths)} object(s)")

        top = lake.query(
            "SELECT country, count(*) AS n FROM tx WHERE amount > ? GROUP BY country ORDER BY n DESC LIMIT 3",
            [100],
        )
        print("top countries for payments > 100:", top.to_pylist())

        frame = lake.scan("transactions/").filter(pl.col("amount") > 100).select(pl.len()).collect()
        print("scanned rows with amount > 100:", frame.item())

        with tempfile.TemporaryDirectory() as scratch:
            local = Path(scratch) / "blob.bin"
            local.write_bytes(b"x" * 1_000_000)
            info = lake.upload(local, "files/blob.bin", metadata={"source": "example"})
            print("uploaded", info.key, info.size, "bytes, metadata", dict(info.metadata))
            print("downloaded", lake.download("files/blob.bin", Path(scratch) / "back.bin"), "bytes")
        print("objects under files/:", lake.list("files/"))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "sygnify-example", sys.argv[2] if len(sys.argv) > 2 else None)
