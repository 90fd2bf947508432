"""LargeDataHandler benchmark: filter -> currency conversion (join) -> group by account.

Run: ``.venv/bin/python benchmarks/bench_handler.py --rows 20000000`` (prints a table). Each
engine runs in its own subprocess so peak RSS is measured cleanly (``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

RUNNER = textwrap.dedent(
    """
    import json, resource, sys, time
    import duckdb, polars as pl
    from sygnify.processing import Aggregate, LargeDataHandler
    src, engine = sys.argv[1], sys.argv[2]
    rates = pl.DataFrame({"currency": ["USD", "EUR", "GBP", "JPY", "CHF"],
                          "usd_rate": [1.0, 1.08, 1.27, 0.0067, 1.13]})
    def convert(lf):
        return (lf.filter(pl.col("amount") > 10).join(rates.lazy(), on="currency")
                  .with_columns(usd=pl.col("amount") * pl.col("usd_rate")))
    spec = Aggregate(by="account_id", usd=("usd", "sum"), n=("usd", "len"))
    started = time.perf_counter()
    if engine == "polars-streaming":
        out = (convert(pl.scan_parquet(src)).group_by("account_id")
               .agg(pl.col("usd").sum(), pl.len().alias("n")).collect(engine="streaming"))
    elif engine == "duckdb":
        con = duckdb.connect()
        con.register("rates", rates.to_arrow())
        out = con.sql(f"SELECT account_id, sum(amount*usd_rate) usd, count(*) n FROM read_parquet('{src}') "
                      "t JOIN rates USING (currency) WHERE amount > 10 GROUP BY account_id").pl()
    else:
        mode, _, executor = engine.partition(":")
        handler = LargeDataHandler(progress=False, max_workers=2, executor=executor or "local",
                                   executor_options={"processes": False} if executor == "dask" else None,
                                   chunk_size=500_000)
        out = handler.process(src, transform=[convert, spec], mode=mode).output
    seconds = time.perf_counter() - started
    rows = pl.scan_parquet(src).select(pl.len()).collect().item()
    print(json.dumps({"engine": engine, "seconds": seconds, "rows_per_s": rows / seconds,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "groups": out.height}))
    """
)
ENGINES = [
    "polars-streaming",
    "duckdb",
    "streaming",
    "chunked",
    "parallel",
    "parallel:processes",
    "parallel:dask",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    root = Path(args.dir or tempfile.mkdtemp(prefix="sygnify-bench-"))
    data = root / f"tx-{args.rows}.parquet"
    if not data.exists():
        from sygnify.demo import generate_transactions

        generate_transactions(args.rows).write_parquet(data, row_group_size=250_000)
    repo = Path(__file__).resolve().parents[1]
    results = []
    for engine in ENGINES:
        done = subprocess.run(
            [sys.executable, "-c", RUNNER, str(data), engine],
            capture_output=True,
            text=True,
            cwd=repo,
            env={"PYTHONPATH": str(repo), "PATH": ""},
            check=False,
        )
        if done.returncode:
            print(f"{engine}: failed: {done.stderr.strip().splitlines()[-1:]}")
            continue
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    base = next((r for r in results if r["engine"] == "polars-streaming"), None)
    print(f"\n{args.rows:,} rows, {data.stat().st_size / 2**20:.0f} MiB Parquet")
    print(f"{'engine':<22}{'seconds':>9}{'rows/s':>14}{'x polars':>10}{'peak RSS MiB':>14}")
    for r in results:
        ratio = r["rows_per_s"] / base["rows_per_s"] if base else float("nan")
        print(
            f"{r['engine']:<22}{r['seconds']:>9.2f}{r['rows_per_s']:>14,.0f}{ratio:>10.2f}{r['peak_rss_mb']:>14.0f}"
        )


if __name__ == "__main__":
    main()
