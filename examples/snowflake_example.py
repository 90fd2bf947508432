"""Bulk-load, query with bound parameters, stream fixed-size batches and scan with Snowflake.

Run against an account (key-pair authentication shown; password or OAuth token work too):

    python examples/snowflake_example.py '{"account": "xy12345.eu-west-1", "user": "ETL",
        "private_key_file": "rsa_key.p8", "warehouse": "LOAD_WH", "database": "SALES", "schema": "PUBLIC"}'

or against a fakesnow server (the tests run exactly this against one):

    python examples/snowflake_example.py '{"account": "fakesnow", "user": "fake", "password": "snow",
        "host": "127.0.0.1", "port": 8080, "protocol": "http", "database": "DB", "schema": "PUBLIC"}'
"""

from __future__ import annotations

import json
import sys
from typing import Any

import polars as pl

from sygnify import CloudDataConnector


def main(options: dict[str, Any]) -> None:
    with CloudDataConnector() as connector:
        sf: Any = connector.connect("snowflake", name="warehouse", **options)
        orders = pl.DataFrame(
            {
                "order_id": list(range(1, 1001)),
                "region": ["eu", "us", "apac", "eu"] * 250,
                "amount": [round(i * 1.37 % 500, 2) for i in range(1000)],
            }
        )
        print("loaded rows:", sf.write(orders, "ORDERS", mode="overwrite").rows)

        per_region = sf.query(
            'SELECT "region", count(*) AS n FROM ORDERS WHERE "amount" > :min GROUP BY 1 ORDER BY 1',
            {"min": 100},
        )
        print("per region:", per_region.to_pylist())

        sizes = [batch.num_rows for batch in sf.stream("SELECT * FROM ORDERS", batch_size=300)]
        print("batch sizes:", sizes)

        top = sf.scan("ORDERS").filter(pl.col("region") == "eu").sort("amount").tail(3).collect()
        print("top eu orders:", top["order_id"].to_list())


if __name__ == "__main__":
    main(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {})
