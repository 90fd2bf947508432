from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from sygnify.demo import generate_transactions

RATES = pl.DataFrame(
    {"currency": ["USD", "EUR", "GBP", "JPY", "CHF"], "usd_rate": [1.0, 1.08, 1.27, 0.0067, 1.13]}
)


def convert(frame: pl.LazyFrame) -> pl.LazyFrame:
    """filter -> currency conversion (join) : the workload of the benchmark."""
    return (
        frame.filter(pl.col("amount") > 10)
        .join(RATES.lazy(), on="currency", how="left")
        .with_columns(usd=pl.col("amount") * pl.col("usd_rate"))
    )


@pytest.fixture(scope="session")
def tx_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tx")
    data = generate_transactions(60_000)
    for i in range(3):
        data.slice(i * 20_000, 20_000).write_parquet(root / f"tx-{i}.parquet", row_group_size=7_000)
    return root
