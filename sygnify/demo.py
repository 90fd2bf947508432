"""The end-to-end demo behind ``sygnify demo``: synthetic transactions through the local connector."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.compute as pc

from sygnify.connectors import CloudDataConnector
from sygnify.io.arrow import to_arrow_table
from sygnify.ml import RealTimeML
from sygnify.processing import Aggregate, LargeDataHandler

__all__ = ["DemoReport", "generate_transactions", "run_demo"]

CURRENCIES = ["USD", "EUR", "GBP", "JPY", "CHF"]
RATES_TO_USD = [1.0, 1.08, 1.27, 0.0067, 1.13]
COUNTRIES = ["US", "DE", "FR", "GB", "JP", "CH", "NL", "ES"]


def generate_transactions(rows: int, *, seed: int = 7) -> pl.DataFrame:
    """A synthetic transactions table: id, account, timestamp, amount, currency, country.

    >>> generate_transactions(3).columns
    ['transaction_id', 'account_id', 'ts', 'amount', 'currency', 'country']
    """
    rng = np.random.default_rng(seed)
    start = np.datetime64("2026-01-01T00:00:00", "s")
    return pl.DataFrame(
        {
            "transaction_id": np.arange(rows, dtype=np.int64),
            "account_id": rng.integers(0, max(rows // 50, 1), rows),
            "ts": (start + rng.integers(0, 365 * 24 * 3600, rows).astype("timedelta64[s]")).astype(
                "datetime64[ms]"
            ),
            "amount": np.round(rng.lognormal(3.5, 1.2, rows), 2),
            "currency": rng.choice(CURRENCIES, rows),
            "country": rng.choice(COUNTRIES, rows),
        }
    )


def _risk_score(features: np.ndarray) -> np.ndarray:
    """A stand-in model: payment risk rises steeply above 1,000 (in any currency)."""
    amounts = features[:, 0]
    return np.asarray(1.0 / (1.0 + np.exp(-(amounts - 1_000.0) / 150.0)))


@dataclass
class DemoReport:
    """What the demo did, step by step (for printing and for tests)."""

    root: Path
    rows: int
    steps: list[tuple[str, float, str]]


def run_demo(
    root: Path, *, rows: int = 1_000_000, batch_size: int = 100_000, echo: Callable[[str], None] = print
) -> DemoReport:
    """Generate data under ``root`` and run a small job over it with the local connector."""
    steps: list[tuple[str, float, str]] = []

    def step(title: str, started: float, detail: str) -> None:
        elapsed = time.perf_counter() - started
        steps.append((title, elapsed, detail))
        echo(f"  {title:<38} {elapsed * 1000:8.1f} ms  {detail}")

    echo(f"sygnify demo: {rows:,} synthetic transactions under {root}")
    with CloudDataConnector() as connector:
        lake = connector.connect(
            "local",
            name="lake",
            root=root,
            tables={"transactions": "transactions/", "rates": "reference/rates.csv"},
        )
        started = time.perf_counter()
        data = generate_transactions(rows).with_columns(month=pl.col("ts").dt.month())
        lake.write(data, "transactions/", mode="overwrite", partition_by=["month"])
        rates = pl.DataFrame({"currency": CURRENCIES, "usd_rate": RATES_TO_USD})
        lake.write(rates, "reference/rates.csv", mode="overwrite")
        step("write partitioned Parquet + CSV", started, f"{len(lake.list('transactions'))} files")

        started = time.perf_counter()
        by_country = lake.query(
            "SELECT t.country, count(*) AS transactions, round(sum(t.amount * r.usd_rate), 2) AS usd "
            "FROM transactions t JOIN rates r USING (currency) WHERE t.amount >= $min_amount "
            "GROUP BY t.country ORDER BY usd DESC",
            {"min_amount": 10.0},
        )
        top = by_country.slice(0, 1).to_pylist()[0]
        step("SQL: USD volume by country (join)", started, f"top {top['country']}: {top['usd']:,.2f} USD")

        started = time.perf_counter()
        big_spenders = (
            lake.scan("transactions/")
            .filter(pl.col("amount") > 500)
            .group_by("account_id")
            .agg(pl.len().alias("large_payments"), pl.col("amount").sum().alias("total"))
            .sort("large_payments", descending=True)
            .head(5)
            .collect()
        )
        step("Polars scan: accounts with most >500", started, f"{big_spenders.height} accounts")

        started = time.perf_counter()
        batches = total_rows = 0
        flagged = 0
        for batch in lake.stream("transactions/", batch_size=batch_size, columns=["amount"]):
            batches += 1
            total_rows += batch.num_rows
            flagged += pc.sum(pc.greater(batch.column("amount"), 1_000)).as_py() or 0
        step(
            "stream batches: flag amounts > 1000",
            started,
            f"{batches} batches, {total_rows:,} rows, {flagged:,} flagged",
        )

        started = time.perf_counter()
        result = lake.write(by_country, "reports/usd_by_country.parquet", mode="overwrite")
        step("write report", started, f"{result.rows} rows -> {result.paths[0]}")

        started = time.perf_counter()
        with LargeDataHandler(chunk_size=batch_size, progress=False) as handler:
            processed = handler.process(
                (lake, "transactions/"),
                mode="chunked",
                transform=Aggregate(
                    by="account_id",
                    payments=("amount", "count"),
                    total=("amount", "sum"),
                    mean=("amount", "mean"),
                ),
                sink=str(lake.resolve("reports/by_account.parquet")),
            )
        step(
            "LargeDataHandler: chunked per-account",
            started,
            f"{processed.rows_in:,} rows in {processed.chunks} chunks -> {processed.rows_out:,} accounts",
        )

        started = time.perf_counter()
        with RealTimeML() as ml:
            ml.register("risk", backend="callable", fn=_risk_score, features=["amount"], version="v1")
            sample = lake.query("SELECT amount FROM transactions USING SAMPLE 100000 ROWS (reservoir, 7)")
            scored = ml.predict("risk", sample)
            risky = pc.sum(pc.greater(to_arrow_table(scored).column("prediction"), 0.5)).as_py() or 0
        step(
            "RealTimeML: score sampled payments",
            started,
            f"{sample.num_rows:,} scored, {risky:,} risky (> 0.5)",
        )

        health = lake.health()
        echo(f"  health: ok={health.ok} ({health.latency_ms:.1f} ms), breaker {health.breaker}")
        echo("\nUSD volume by country:")
        echo(str(pl.from_arrow(by_country)))
    return DemoReport(root=root, rows=rows, steps=steps)
