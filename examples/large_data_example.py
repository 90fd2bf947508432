"""LargeDataHandler on synthetic transactions: python examples/large_data_example.py [DIR]."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import polars as pl

from sygnify.demo import generate_transactions
from sygnify.processing import Aggregate, LargeDataHandler

root = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())
generate_transactions(300_000).write_parquet(root / "tx.parquet", row_group_size=50_000)
rates = pl.DataFrame(
    {"currency": ["USD", "EUR", "GBP", "JPY", "CHF"], "usd_rate": [1.0, 1.08, 1.27, 0.0067, 1.13]}
)


def convert(frame: pl.LazyFrame) -> pl.LazyFrame:
    return (
        frame.filter(pl.col("amount") > 10)
        .join(rates.lazy(), on="currency")
        .with_columns(usd=pl.col("amount") * pl.col("usd_rate"))
    )


spec = Aggregate(
    by="account_id", usd=("usd", "sum"), n=("usd", "len"), countries=("country", "approx_n_unique")
)
with LargeDataHandler(chunk_size=100_000, max_workers=2, progress=False) as handler:
    for mode in ("streaming", "chunked", "parallel"):
        result = handler.process(str(root / "tx.parquet"), transform=[convert, spec], mode=mode)
        print(mode, result.summary())
