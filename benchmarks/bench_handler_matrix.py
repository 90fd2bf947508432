"""LargeDataHandler matrix: every mode x option against raw Polars streaming and DuckDB.

Run from the repository root with the venv::

    .nox/tests/bin/python benchmarks/bench_handler_matrix.py                  # 20M rows, 5 rounds
    .nox/tests/bin/python benchmarks/bench_handler_matrix.py --only aggregate/parallel
    .nox/tests/bin/python benchmarks/bench_handler_matrix.py --rows 300000 --csv-rows 100000 \\
        --repeat 1 --no-fail                                                  # smoke test

Data (generated once with Polars and cached under ``build/bench-data/``, git-ignored, one
name per row count): ``--rows`` transactions ``account_id`` (Int64, ~100k distinct),
``amount`` (Float64, uniform 0..1000), ``currency`` (String, 8 codes), ``is_fraud``
(Boolean) as Parquet with 250k-row row groups, and an 8-row rates table. Every run is a
fresh subprocess that times only the ``process()`` call (or the raw query), not imports,
data generation or reading the output back; engines run interleaved, ``--repeat`` rounds in
rotated order, so noise from the neighbours hits every cell alike. Each subprocess prints
one JSON line; the tables show medians, the spread (min-max) and the one_query flag
(whether the handler ran its single-query fast path).

Jobs: ``rowwise`` = filter ``amount > 10`` -> left join on the rates -> ``amount_usd``,
into one Parquet file (a dataset directory in incremental mode); ``aggregate`` = the same
steps then ``Aggregate(by="currency", total=sum, n=len)``, into ``result.output``.

Sections and targets (medians; a cell that errors counts as missed):

- matrix: modes streaming / chunked / parallel (``max_workers=2``, local threads) /
  incremental x options none / ``max_memory="2GB"`` / ``on_error="skip"`` /
  ``on_error="dead_letter"`` / ``schema=`` (the file's own schema): every handler cell
  >= 0.85x raw Polars streaming (x raw = raw seconds / handler seconds, same job), with
  the same rows (and totals) as raw and no dead letters on this clean data.
- bad rows: the first ``--csv-rows`` rows as CSV with every 1000th ``amount`` replaced
  by ``"n/a"``; streaming mode with a schema and ``on_error="dead_letter"``, rowwise job:
  dead letters == the bad rows, output rows == raw Polars (``scan_csv`` with the schema)
  over a clean CSV of the other rows, and >= 0.7x raw's speed on that clean CSV.
- eager: the rowwise job as a step annotated ``df: pl.DataFrame`` (it runs on each morsel,
  in pieces of at most ``chunk_size`` rows) in streaming / chunked / parallel mode, against
  the same raw Polars query: >= 0.85x raw.
- drift: the ``--csv-rows`` rows as 4 Parquet files whose last one has ``amount`` as text,
  every 1000th value ``"n/a"``; streaming mode, ``schema=`` (the first file's) and
  ``on_error="dead_letter"``, rowwise job: dead letters == the bad rows, output == raw
  Polars over the same files without them (amount as Float64), >= 0.7x raw's speed.
- budget: ``max_memory="256MB"`` in every mode on the rowwise job over ``--wide-rows``
  (12M) rows with a 200-byte ``note`` column (2.7 GB as Arrow, >10x the budget; the header
  says what it is): peak growth of allocated memory during ``process()`` (resident minus
  file-backed pages from ``/proc/self/statm``, sampled every 10 ms in a thread, minus the
  same at the start; the worst run) <= 256 MiB, and >= 0.7x raw Polars without a budget
  on the same data. (Every section's peak growth column counts memory the same way.)

Prints one markdown table per section, a ``MISSED`` line per missed target and a final
``RESULT: all targets met`` or ``RESULT: N MISSED``; exits 1 when a target is missed
(``--no-fail``: always 0).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CURRENCIES = ["USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "SEK"]
USD_RATES = [1.0, 1.08, 1.27, 0.0067, 1.13, 0.73, 0.66, 0.095]
ROW_GROUP = 250_000
#: Every BAD_EVERY-th row of the bad-rows CSV has ``amount = "n/a"`` (0.1%).
BAD_EVERY = 1000
MODES = ["streaming", "chunked", "parallel", "incremental"]
OPTIONS = ["none", "max_memory=2GB", "on_error=skip", "on_error=dead_letter", "schema"]
BUDGET = "256MB"
MIN_RATIO, MIN_BAD_ROWS_RATIO, MIN_BUDGET_RATIO = 0.85, 0.7, 0.7
MAX_GROWTH_MIB = 256
SECTIONS = {
    "matrix": f"matrix: handler vs raw Polars streaming (target >= {MIN_RATIO}x raw)",
    "badrows": f"bad rows: CSV, 0.1% unparseable amounts (target >= {MIN_BAD_ROWS_RATIO}x raw on clean CSV)",
    "eager": f"eager: the rowwise job as a step that takes a DataFrame (target >= {MIN_RATIO}x raw)",
    "drift": (
        "schema drift: 4 Parquet files, the last one's amount as text with 0.1% 'n/a' "
        f"(target >= {MIN_BAD_ROWS_RATIO}x raw on the clean files)"
    ),
    "budget": (
        f"budget: max_memory={BUDGET} (targets: peak growth <= {MAX_GROWTH_MIB} MiB, "
        f">= {MIN_BUDGET_RATIO}x raw unbudgeted)"
    ),
}

GENERATE = textwrap.dedent(
    """
    import json, sys
    import numpy as np, polars as pl
    kind, rows, out, codes = sys.argv[1], int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
    block = 1_000_000  # seeded per block: the first N rows are the same whatever the total
    def frames():
        for i, start in enumerate(range(0, rows, block)):
            n = min(block, rows - start)
            rng = np.random.default_rng([7, i])
            yield start, pl.DataFrame({
                "account_id": rng.integers(0, 100_000, n, dtype=np.int64),
                "amount": rng.uniform(0.0, 1000.0, n),
                "currency": pl.Series(np.asarray(codes)[rng.integers(0, len(codes), n)], dtype=pl.String),
                "is_fraud": rng.random(n) < 0.01,
            })
    if kind in ("parquet", "wide"):  # wide: plus a 200-byte note (small on disk: dictionary-encoded)
        import pyarrow.parquet as pq
        writer, arrow_bytes = None, 0
        notes = pl.Series([f"{i:04d}" + "x" * 196 for i in range(64)])
        for start, df in frames():
            if kind == "wide":
                picks = np.random.default_rng([11, start]).integers(0, 64, df.height)
                df = df.with_columns(note=notes.gather(picks))
            table = df.to_arrow()
            arrow_bytes += table.nbytes
            writer = writer or pq.ParquetWriter(out, table.schema)
            writer.write_table(table, row_group_size=int(sys.argv[5]))
        writer.close()
        print(json.dumps({"arrow_bytes": arrow_bytes}))
    elif kind in ("drift", "driftclean"):  # 4 Parquet files; the last one's amount drifted to text
        import os
        every = int(sys.argv[5])
        os.makedirs(out)
        frame = pl.concat([df for _, df in frames()])
        size = -(-frame.height // 4)
        for i in range(4):
            df = frame.slice(i * size, size)
            if i == 3:
                bad = (pl.int_range(0, df.height) % every) == every - 1
                if kind == "drift":
                    text = pl.col("amount").cast(pl.String)
                    df = df.with_columns(amount=pl.when(bad).then(pl.lit("n/a")).otherwise(text))
                else:
                    df = df.filter(~bad)
            df.write_parquet(f"{out}/part-{i}.parquet", row_group_size=250_000)
    else:  # "bad": every n-th amount is "n/a"; "clean": those rows left out
        every = int(sys.argv[5])
        with open(out, "w", encoding="utf-8") as f:
            for start, df in frames():
                bad = (pl.int_range(start, start + df.height) % every) == every - 1
                if kind == "bad":
                    text = pl.col("amount").cast(pl.String)
                    df = df.with_columns(amount=pl.when(bad).then(pl.lit("n/a")).otherwise(text))
                else:
                    df = df.filter(~bad)
                df.write_csv(f, include_header=start == 0)
    """
)

RUNNER = textwrap.dedent(
    """
    import json, os, shutil, sys, tempfile, threading, time, traceback
    spec = json.loads(sys.argv[1])
    import duckdb, polars as pl
    from sygnify.processing import Aggregate, LargeDataHandler
    CSV_SCHEMA = {"account_id": pl.Int64, "amount": pl.Float64, "currency": pl.String, "is_fraud": pl.Boolean}
    rates = pl.DataFrame({"currency": spec["currencies"], "usd_rate": spec["rates"]})
    def convert(lf):
        return (lf.filter(pl.col("amount") > 10).join(rates.lazy(), on="currency", how="left")
                  .with_columns(amount_usd=pl.col("amount") * pl.col("usd_rate")))
    def eager(df: pl.DataFrame) -> pl.DataFrame:  # the same steps, given DataFrames
        return convert(df.lazy()).collect()
    by_currency = Aggregate(by="currency", total=("amount_usd", "sum"), n=("amount_usd", "len"))
    src, job, engine, mode = spec["src"], spec["job"], spec["engine"], spec["mode"]
    csv = src.endswith(".csv")
    def scan():
        return pl.scan_csv(src, schema=CSV_SCHEMA) if csv else pl.scan_parquet(src)
    statm, page = os.open("/proc/self/statm", os.O_RDONLY), os.sysconf("SC_PAGE_SIZE")
    def rss():  # resident minus file-backed pages, as sygnify's PeakMemory counts (mapped input is cache)
        fields = os.pread(statm, 128, 0).split()
        return (int(fields[1]) - int(fields[2])) * page
    peak, stop = [0], threading.Event()
    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss())
            stop.wait(0.01)
    tmp = tempfile.mkdtemp(prefix="run-", dir=spec["tmp"])
    out_file, out_dir = os.path.join(tmp, "out.parquet"), os.path.join(tmp, "out")
    result = None
    try:
        if engine == "handler":
            options = {} if spec["option"] == "none" else dict.fromkeys(spec["option"].split("+"))
            setup = {"progress": False}
            if spec["chunk_size"]:
                setup["chunk_size"] = spec["chunk_size"]
            if mode == "parallel":
                setup["max_workers"] = 2
            transform = {"rowwise": convert, "eager": eager}.get(job, [convert, by_currency])
            kwargs = {"mode": mode, "transform": transform}
            for option in options:
                if option.startswith("max_memory="):
                    setup["max_memory"] = option.partition("=")[2]
                elif option.startswith("on_error="):
                    kwargs["on_error"] = option.partition("=")[2]
                    if kwargs["on_error"] == "dead_letter":
                        kwargs["dead_letter"] = os.path.join(tmp, "dead")
                elif option == "schema":
                    kwargs["schema"] = dict(CSV_SCHEMA) if csv else dict(scan().collect_schema())
                else:
                    raise ValueError(f"unknown option {option!r}")
            if mode == "incremental":
                kwargs["sink"], kwargs["checkpoint"] = out_dir, os.path.join(tmp, "state.json")
            elif job in ("rowwise", "eager"):
                kwargs["sink"] = out_file
            handler = LargeDataHandler(**setup)
        elif engine == "duckdb":
            con = duckdb.connect()
            con.register("rates", rates.to_arrow())
            select = ("SELECT t.*, r.usd_rate, t.amount * r.usd_rate AS amount_usd "
                      f"FROM read_parquet('{src}') t LEFT JOIN rates r USING (currency) WHERE t.amount > 10")
        start_rss = rss()
        threading.Thread(target=sample, daemon=True).start()
        started = time.perf_counter()
        if engine == "handler":
            result = handler.process(src, **kwargs)
            output = result.output
        elif engine == "raw" and job == "rowwise":
            convert(scan()).sink_parquet(out_file)
        elif engine == "raw":
            output = (convert(scan()).group_by("currency")
                      .agg(total=pl.col("amount_usd").sum(), n=pl.col("amount_usd").len())
                      .collect(engine="streaming"))
        elif job == "rowwise":
            con.execute(f"COPY ({select}) TO '{out_file}' (FORMAT parquet)")
        else:
            output = con.sql(f"SELECT currency, sum(amount_usd) total, count(*) n FROM ({select}) "
                             "GROUP BY currency").pl()
        seconds = time.perf_counter() - started
        stop.set()
        peak_delta = max(peak[0], rss()) - start_rss
        if engine == "handler":
            handler.close()  # stopping a pool is not part of the run
        written = out_file if os.path.exists(out_file) else os.path.join(out_dir, "**", "*.parquet")
        if job in ("rowwise", "eager"):
            stats = pl.scan_parquet(written).select(rows=pl.len(), total=pl.col("amount_usd").sum()).collect()
            rows, groups, total = stats["rows"].item(), None, stats["total"].item()
        else:
            if output is None:
                output = pl.read_parquet(written)
            rows, groups, total = int(output["n"].sum()), output.height, float(output["total"].sum())
        print(json.dumps({
            "seconds": seconds, "rows": rows, "groups": groups, "total": total, "peak_delta": peak_delta,
            "one_query": None if result is None else bool(result.one_query),
            "dead_letters": None if result is None else result.dead_letters,
            "rows_in": None if result is None else result.rows_in,
            "rows_out": None if result is None else result.rows_out,
            "peak_memory_delta": None if result is None else result.peak_memory_delta,
        }))
    except BaseException as exc:
        traceback.print_exc()
        first = (str(exc).strip().splitlines() or [""])[0]
        print(json.dumps({"error": f"{type(exc).__name__}: {first}"[:300]}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    """
)


@dataclass(frozen=True)
class Cell:
    """One engine configuration: run ``--repeat`` times, one subprocess each."""

    section: str  # a key of SECTIONS
    job: str  # "rowwise" | "aggregate"
    engine: str  # "raw" | "duckdb" | "handler"
    mode: str = "-"
    option: str = "-"
    data: str = "parquet"  # "parquet" | "bad" | "clean" (the CSVs)
    baseline: str | None = None  # the name of the cell whose median is "raw"

    @property
    def name(self) -> str:
        if self.engine != "handler":
            return f"{self.section}/{self.job}/{self.engine}"
        return f"{self.section}/{self.job}/{self.mode}/{self.option}"

    @property
    def label(self) -> str:
        return {"raw": "raw polars", "duckdb": "duckdb"}.get(self.engine, self.mode)


def cells() -> list[Cell]:
    """Every cell of every section, baselines first."""
    found: list[Cell] = []
    for job in ("rowwise", "aggregate"):
        raw = Cell("matrix", job, "raw")
        found += [raw, Cell("matrix", job, "duckdb", baseline=raw.name)]
        found += [Cell("matrix", job, "handler", m, o, baseline=raw.name) for m in MODES for o in OPTIONS]
    clean = Cell("badrows", "rowwise", "raw", data="clean")
    bad = Cell("badrows", "rowwise", "handler", "streaming", "schema+on_error=dead_letter", "bad", clean.name)
    found += [clean, bad]
    drift_clean = Cell("drift", "rowwise", "raw", data="driftclean")
    drifted = Cell(
        "drift", "rowwise", "handler", "streaming", "schema+on_error=dead_letter", "drift", drift_clean.name
    )
    found += [drift_clean, drifted]
    rowwise_raw = found[0].name
    found += [Cell("eager", "eager", "handler", m, "none", baseline=rowwise_raw) for m in MODES[:3]]
    wide_raw = Cell("budget", "rowwise", "raw", data="wide")
    found += [wide_raw]
    found += [
        Cell("budget", "rowwise", "handler", m, f"max_memory={BUDGET}", "wide", wide_raw.name) for m in MODES
    ]
    return found


def cached(root: Path, name: str, kind: str, rows: int) -> tuple[Path, dict[str, Any]]:
    """A data file under ``root``, generated once (in a subprocess: the runs stay lean)."""
    path, meta = root / name, root / f"{name}.json"
    if not path.exists():
        root.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".tmp")
        every = ROW_GROUP if kind == "parquet" else BAD_EVERY
        argv = [kind, str(rows), str(partial), json.dumps(CURRENCIES), str(every)]
        done = subprocess.run(
            [sys.executable, "-c", GENERATE, *argv], check=True, capture_output=True, text=True
        )
        meta.write_text(done.stdout.strip() or "{}")
        partial.replace(path)
    info: dict[str, Any] = json.loads(meta.read_text()) if meta.exists() else {}
    return path, info


def run(cell: Cell, src: Path, args: argparse.Namespace, repo: Path) -> dict[str, Any]:
    """One run of ``cell`` in a fresh subprocess: its JSON line, or ``{"error": ...}``."""
    spec = {
        "src": str(src),
        "job": cell.job,
        "engine": cell.engine,
        "mode": cell.mode,
        "option": cell.option,
        "chunk_size": args.chunk_size,
        "tmp": str(args.tmp),
        "currencies": CURRENCIES,
        "rates": USD_RATES,
    }
    env = {**os.environ, "PYTHONPATH": str(repo)}
    try:
        done = subprocess.run(
            [sys.executable, "-c", RUNNER, json.dumps(spec)],
            capture_output=True,
            text=True,
            cwd=repo,
            env=env,
            check=False,
            timeout=args.timeout,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {args.timeout} s"}
    lines = done.stdout.strip().splitlines()
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        return {"error": f"no result (exit status {done.returncode}): {tail[0][:300]}"}
    if "error" in result and args.verbose:
        print(f"--- {cell.name}\n{done.stderr}", file=sys.stderr)
    return result


@dataclass
class Summary:
    """A cell's runs, reduced to the table's figures."""

    median: float = math.nan
    low: float = math.nan
    high: float = math.nan
    one_query: str = "-"
    rows: int | None = None
    total: float | None = None
    dead_letters: int | None = None
    growth_mib: float = math.nan  # the worst run's sampled peak RSS growth
    error: str | None = None


def summarize(results: list[dict[str, Any]]) -> Summary:
    errors = [r["error"] for r in results if "error" in r]
    ok = [r for r in results if "error" not in r]
    summary = Summary(error=errors[0] if errors else None)
    if not ok:
        summary.error = summary.error or "no run"
        return summary
    seconds = [r["seconds"] for r in ok]
    summary.median, summary.low, summary.high = statistics.median(seconds), min(seconds), max(seconds)
    flags = {r["one_query"] for r in ok}
    if flags != {None}:
        summary.one_query = "mixed" if len(flags) > 1 else ("yes" if flags == {True} else "no")
    summary.rows, summary.total = ok[0]["rows"], ok[0]["total"]
    if any(r["rows"] != summary.rows for r in ok):
        summary.error = f"runs disagree on the rows: {sorted({r['rows'] for r in ok})}"
    letters = {r["dead_letters"] for r in ok}
    summary.dead_letters = max(letters) if letters != {None} else None
    summary.growth_mib = max(r["peak_delta"] for r in ok) / 2**20
    return summary


def same_total(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)


def judge(cell: Cell, s: Summary, base: Summary | None, bad_rows: int) -> tuple[float, list[str]]:
    """The cell's x raw and its missed targets."""
    ratio = base.median / s.median if base is not None and s.error is None else math.nan
    if cell.engine != "handler":
        return ratio, [f"ERROR {s.error}"] if s.error else []
    if s.error:
        return ratio, [f"ERROR {s.error}"]
    if base is None or base.error:
        return ratio, ["no baseline (its raw run failed)"]
    target = {
        "matrix": MIN_RATIO,
        "eager": MIN_RATIO,
        "badrows": MIN_BAD_ROWS_RATIO,
        "drift": MIN_BAD_ROWS_RATIO,
        "budget": MIN_BUDGET_RATIO,
    }[cell.section]
    missed = [f"{ratio:.2f}x raw (target >= {target})"] if not ratio >= target else []
    if s.rows != base.rows or not same_total(s.total, base.total):
        missed.append(f"output differs from raw: {s.rows} rows, total {s.total} vs {base.rows}, {base.total}")
    if cell.section in ("badrows", "drift") and s.dead_letters != bad_rows:
        missed.append(f"{s.dead_letters} dead letters (the bad rows: {bad_rows})")
    elif cell.section in ("matrix", "eager") and s.dead_letters:
        missed.append(f"{s.dead_letters} dead letters on clean data")
    if cell.section == "budget" and not s.growth_mib <= MAX_GROWTH_MIB:
        missed.append(f"peak growth {s.growth_mib:.0f} MiB (target <= {MAX_GROWTH_MIB} MiB)")
    return ratio, missed


def figure(value: float, digits: int) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def table(section: list[Cell], summaries: dict[str, Summary], bad_rows: int) -> list[str]:
    """Prints the section's table; returns its MISSED lines."""
    print(
        "| job | mode | option | median s | spread s | x raw | one_query | rows | dead letters "
        "| peak growth MiB | status |"
    )
    print("|---|---|---|---:|---|---:|---|---:|---:|---:|---|")
    missed: list[str] = []
    for cell in section:
        s = summaries[cell.name]
        base = summaries.get(cell.baseline) if cell.baseline else None
        ratio, problems = judge(cell, s, base, bad_rows)
        status = f"ERROR {s.error}".replace("|", "\\|") if s.error else ("MISSED" if problems else "ok")
        spread = f"{s.low:.2f}-{s.high:.2f}" if not math.isnan(s.low) else "-"
        ratio_text = "1.00" if cell.baseline is None and not s.error else figure(ratio, 2)
        rows = f"{s.rows:,}" if s.rows is not None else "-"
        letters = "-" if s.dead_letters is None else f"{s.dead_letters:,}"
        print(
            f"| {cell.job} | {cell.label} | {cell.option} | {figure(s.median, 2)} | {spread} | {ratio_text} "
            f"| {s.one_query} | {rows} | {letters} | {figure(s.growth_mib, 0)} | {status} |"
        )
        missed += [f"MISSED {cell.name}: {p}" for p in problems]
    return missed


def main() -> int:
    repo = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000_000, help="Parquet rows (matrix, budget)")
    parser.add_argument("--wide-rows", type=int, default=12_000_000, help="rows of the budget's wide data")
    parser.add_argument("--csv-rows", type=int, default=5_000_000, help="CSV rows (bad rows)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds (medians over them)")
    parser.add_argument("--only", default="", help="substring filter on cell names (plus their baselines)")
    parser.add_argument("--no-fail", action="store_true", help="exit 0 even when a target is missed")
    parser.add_argument("--chunk-size", type=int, default=None, help="handler chunk_size (default: its own)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds before a run counts as an error")
    parser.add_argument("--verbose", action="store_true", help="print the traceback of failed runs")
    parser.add_argument("--dir", type=Path, default=repo / "build" / "bench-data")
    args = parser.parse_args()
    args.tmp = args.dir / "runs"
    args.tmp.mkdir(parents=True, exist_ok=True)

    every = cells()
    by_name = {c.name: c for c in every}
    wanted = {c.name for c in every if args.only in c.name}
    wanted |= {c.baseline for c in every if c.name in wanted and c.baseline}
    chosen = [c for c in every if c.name in wanted]
    if not chosen:
        print(f"no cell matches --only {args.only!r}; cells: {', '.join(by_name)}", file=sys.stderr)
        return 2
    kinds = {c.data for c in chosen}
    sources: dict[str, Path] = {}
    parquet, _ = cached(args.dir, f"matrix-tx-{args.rows}.parquet", "parquet", args.rows)
    sources["parquet"] = parquet
    info: dict[str, Any] = {}
    if "wide" in kinds:
        sources["wide"], info = cached(
            args.dir, f"matrix-wide-{args.wide_rows}.parquet", "wide", args.wide_rows
        )
    if "bad" in kinds or "clean" in kinds:
        sources["bad"] = cached(args.dir, f"matrix-tx-{args.csv_rows}-bad.csv", "bad", args.csv_rows)[0]
        sources["clean"] = cached(args.dir, f"matrix-tx-{args.csv_rows}-clean.csv", "clean", args.csv_rows)[0]
    if "drift" in kinds or "driftclean" in kinds:
        for kind in ("drift", "driftclean"):
            folder = cached(args.dir, f"matrix-tx-{args.csv_rows}-{kind}", kind, args.csv_rows)[0]
            sources[kind] = folder / "*.parquet"

    results: dict[str, list[dict[str, Any]]] = {c.name: [] for c in chosen}
    for round_ in range(args.repeat):  # interleaved, rotated: noise hits every cell alike
        shift = round_ % len(chosen)
        for cell in chosen[shift:] + chosen[:shift]:
            result = run(cell, sources[cell.data], args, repo)
            results[cell.name].append(result)
            if "error" in result:
                print(f"{cell.name}: {result['error']}", file=sys.stderr)
    summaries = {name: summarize(rs) for name, rs in results.items()}

    cpus = len(os.sched_getaffinity(0))
    bad_rows = args.csv_rows // BAD_EVERY
    print(
        f"\n{args.rows:,} rows, {parquet.stat().st_size / 2**20:.0f} MiB Parquet, {cpus} CPUs, "
        f"chunk_size={args.chunk_size or 'default'}, median and spread of {args.repeat} run(s)"
    )
    missed: list[str] = []
    for key, title in SECTIONS.items():
        section = [c for c in chosen if c.section == key]
        if not any(c.engine == "handler" for c in section):
            continue
        print(f"\n### {title}\n")
        if key == "badrows":
            print(f"{args.csv_rows:,} CSV rows, {bad_rows:,} bad (every {BAD_EVERY}th amount is 'n/a')\n")
        if key == "budget":
            arrow = info.get("arrow_bytes", 0)
            budget = int(BUDGET.removesuffix("MB")) * 10**6
            print(f"data: {args.wide_rows:,} rows with a 200-byte note, ", end="")
            print(f"{arrow / 2**20:,.0f} MiB as Arrow = {arrow / budget:.1f}x the budget", end="")
            print(" (target >= 10x)\n" if arrow >= 10 * budget else " (NOTE: under the 10x wanted)\n")
        expected_bad = bad_rows
        if key == "drift":  # the last of 4 files of ceil(rows / 4) rows holds the bad ones
            expected_bad = (args.csv_rows - 3 * -(-args.csv_rows // 4)) // BAD_EVERY
            print(f"{args.csv_rows:,} rows in 4 files, {expected_bad:,} bad in the last one\n")
        lines = table(section, summaries, expected_bad)
        for line in dict.fromkeys(lines):
            print(line)
        missed += lines
    failed = len({line.split(":", 1)[0] for line in missed})
    print(f"\nRESULT: {'all targets met' if not failed else f'{failed} MISSED'}")
    return 1 if failed and not args.no_fail else 0


if __name__ == "__main__":
    sys.exit(main())
