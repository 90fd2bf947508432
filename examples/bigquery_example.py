"""Load, query with parameters, estimate, stream and scan with the BigQuery connector.

Run against a real project (application default credentials, or a key file):

    python examples/bigquery_example.py '{"project": "my-project", "credentials_file": "key.json"}'

or against bqemulator (the tests run exactly this against one):

    python examples/bigquery_example.py '{"project": "test-proj", "anonymous": true,
        "endpoint": "http://127.0.0.1:9050", "storage_endpoint": "http://127.0.0.1:9060"}'
"""

from __future__ import annotations

import json
import sys
from typing import Any

import polars as pl

from sygnify import CloudDataConnector


def main(options: dict[str, Any], dataset: str = "sygnify_example") -> None:
    with CloudDataConnector() as connector:
        bq: Any = connector.connect("bigquery", name="warehouse", dataset=dataset, **options)
        if dataset not in bq.datasets():
            bq.client.create_dataset(dataset)
        orders = pl.DataFrame(
            {
                "order_id": list(range(1, 1001)),
                "region": ["eu", "us", "apac", "eu"] * 250,
                "amount": [round(i * 1.37 % 500, 2) for i in range(1000)],
            }
        )
        print("loaded rows:", bq.write(orders, "orders", mode="overwrite").rows)

        sql = "SELECT region, count(*) AS n FROM orders WHERE amount > @min GROUP BY region"
        print("estimated bytes:", bq.estimate(sql, {"min": 100}))
        print("per region:", bq.query(sql + " ORDER BY region", {"min": 100}).to_pylist())

        streamed = sum(batch.num_rows for batch in bq.stream("orders", batch_size=300, columns=["amount"]))
        print("streamed rows:", streamed)

        top = bq.scan("orders").filter(pl.col("region") == "eu").sort("amount").tail(3).collect()
        print("top eu orders:", top["order_id"].to_list())
        print("tables:", bq.list(f"{dataset}."))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {})
