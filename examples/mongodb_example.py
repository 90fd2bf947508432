"""Write, find, aggregate, scan and upsert with the MongoDB connector.

Run: python examples/mongodb_example.py "mongodb://USER:PASSWORD@HOST:27017/?authMechanism=SCRAM-SHA-256"
(any MongoDB or Atlas URI; the tests run the same calls against the mongoeco wire server).
"""

from __future__ import annotations

import sys

import polars as pl

from sygnify import CloudDataConnector


def main(uri: str) -> None:
    with CloudDataConnector() as connector:
        shop = connector.connect("mongodb", name="shop", uri=uri, database="sygnify_example")
        orders = pl.DataFrame(
            {
                "order_id": [1, 2, 3, 4],
                "customer": ["ada", "bob", "ada", "cy"],
                "amount": [12.5, 7.0, 30.25, 3.0],
            }
        )
        shop.write(orders, "orders", mode="overwrite")
        shop.write(
            pl.DataFrame({"order_id": [2], "customer": ["bob"], "amount": [70.0]}),
            "orders",
            upsert_key=["order_id"],
        )

        big = shop.find(
            "orders", {"amount": {"$gt": 10}}, projection=["order_id", "amount"], sort=[("order_id", 1)]
        )
        print("orders over 10:", big.to_pylist())

        per_customer = shop.aggregate(
            "orders", [{"$group": {"_id": "$customer", "total": {"$sum": "$amount"}}}, {"$sort": {"_id": 1}}]
        )
        print("totals:", per_customer.to_pylist())

        print(shop.scan("orders").group_by("customer").agg(pl.len()).sort("customer").collect())


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1])
