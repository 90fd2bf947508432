"""Write, query, stream and scan a small dataset with the embedded local connector.

Run: python examples/local_quickstart.py [ROOT]
"""

from __future__ import annotations

import sys
import tempfile

import polars as pl

from sygnify import CloudDataConnector
from sygnify.demo import generate_transactions


def main(root: str) -> None:
    with CloudDataConnector() as connector:
        lake = connector.connect("local", name="lake", root=root, tables={"tx": "transactions/"})
        lake.write(generate_transactions(50_000), "transactions/", mode="overwrite")

        top = lake.query(
            "SELECT country, count(*) AS n FROM tx WHERE amount > ? GROUP BY country ORDER BY n DESC LIMIT 3",
            [100],
        )
        print("top countries for payments > 100:", top.to_pylist())

        rows = sum(batch.num_rows for batch in lake.stream("transactions/", batch_size=20_000))
        print("streamed rows:", rows)

        mean_by_currency = (
            lake.scan("transactions/").group_by("currency").agg(pl.col("amount").mean()).sort("currency")
        )
        print(mean_by_currency.collect())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="sygnify-"))
