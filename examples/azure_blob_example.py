"""Objects and datasets on Azure Blob Storage with the azure_blob connector.

Run against Azure (DefaultAzureCredential):  python examples/azure_blob_example.py ACCOUNT CONTAINER
or against Azurite with its connection string:
    export AZURE_STORAGE_CONNECTION_STRING="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;\\
AccountKey=...;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
    python examples/azure_blob_example.py - CONTAINER
"""

from __future__ import annotations

import os
import sys

import polars as pl

from sygnify import CloudDataConnector
from sygnify.demo import generate_transactions


def main(account: str, container: str) -> None:
    options: dict[str, object] = {"container": container, "tables": {"tx": "transactions/"}}
    if account == "-":
        options["connection_string"] = os.environ["AZURE_STORAGE_CONNECTION_STRING"]
    else:
        options["account_name"] = account
    with CloudDataConnector() as connector:
        lake = connector.connect("azure_blob", name="lake", **options)
        lake.create_bucket()  # creates the container if needed

        written = lake.write(
            generate_transactions(50_000), "transactions/", partition_by=["country"], mode="overwrite"
        )
        print(f"wrote {written.rows} rows to {len(written.paths)} blob(s)")

        top = lake.query("SELECT country, count(*) AS n FROM tx GROUP BY country ORDER BY n DESC LIMIT 3")
        print("top countries:", top.to_pylist())

        big = (
            lake.scan(f"az://{container}/transactions/")
            .filter(pl.col("amount") > 100)
            .select(pl.len())
            .collect()
        )
        print("scanned rows with amount > 100:", big.item())

        lake.put("notes/hello.txt", b"hello from sygnify", content_type="text/plain")
        print("notes:", lake.list("notes/"), lake.get("notes/hello.txt").decode())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "-", sys.argv[2] if len(sys.argv) > 2 else "sygnify-example")
