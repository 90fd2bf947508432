"""The subprocess side of the fuzz harness: runs one reader on one input and describes what it did.

``python -m tests.fuzz.worker`` reads requests as JSON lines on stdin
(``{"root": DIR, "source": "data.csv", "op": "stream"}``) and answers each with one JSON
line on the file descriptor it was started with as stdout (the library's own prints go to
stderr), so the parent sees a crash as the process ending mid-request.

An answer is ``{"status": "ok", "rows": N, "accounted": N, ...}`` or
``{"status": "error", "type": "pyarrow.lib.ArrowInvalid", "typed": false, "message": ...}``;
``invalid`` lists batches that failed ``validate(full=True)``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

MODES = ("streaming", "chunked", "parallel", "incremental")
POLICIES = ("raise", "skip", "dead_letter")
OPERATIONS = ("stream", "scan", "query", *(f"process:{m}:{p}" for m in MODES for p in POLICIES))


def text(value: object, limit: int = 300) -> str:
    """One printable ASCII line (messages quote the bad bytes they met)."""
    return " ".join(str(value).split())[:limit].encode("ascii", "backslashreplace").decode()


def _validate(table: Any, where: str, invalid: list[str]) -> None:
    try:
        table.validate(full=True)
    except Exception as exc:  # pyarrow.ArrowInvalid: the finding itself
        invalid.append(f"{where}: {type(exc).__name__}: {text(exc, 200)}")


def _parquet_rows(folder: Path) -> tuple[int, list[str]]:
    """Rows of every data file under ``folder`` (a sink or a dead-letter directory)."""
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq

    rows, invalid = 0, []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name.startswith((".", "_")) or "_sygnify" in path.parts:
            continue
        if path.suffix == ".parquet":
            table = pq.read_table(path)
        elif path.suffix == ".arrow":
            table = ipc.open_file(path).read_all()
        else:
            continue
        _validate(table, path.name, invalid)
        rows += table.num_rows
    return rows, invalid


def run_stream(lake: Any, source: str) -> dict[str, Any]:
    rows, invalid = 0, []
    for i, batch in enumerate(lake.stream(source)):
        _validate(batch, f"batch {i}", invalid)
        rows += batch.num_rows
    return {"rows": rows, "accounted": rows, "invalid": invalid}


def run_scan(lake: Any, source: str) -> dict[str, Any]:
    frame = lake.scan(source).collect()
    invalid: list[str] = []
    try:
        table = frame.to_arrow()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # Polars panics on some frames (a NUL in a column name)
        invalid.append(f"collect().to_arrow() failed: {type(exc).__name__}: {text(exc, 200)}")
    else:
        _validate(table, "collect()", invalid)
    return {"rows": frame.height, "accounted": frame.height, "invalid": invalid}


def run_query(lake: Any, source: str) -> dict[str, Any]:
    table = lake.query(f"SELECT count(*) AS n FROM '{source}'")
    invalid: list[str] = []
    _validate(table, "query result", invalid)
    rows = int(table.column("n")[0].as_py())
    return {"rows": rows, "accounted": rows, "invalid": invalid}


def run_process(root: str, source: str, mode: str, policy: str, work: Path) -> dict[str, Any]:
    from sygnify.processing import LargeDataHandler

    kwargs: dict[str, Any] = {}
    sink = None
    if mode == "incremental":
        sink = work / "sink"
        kwargs["checkpoint"] = str(work / "checkpoint.json")
    if policy == "dead_letter":
        kwargs["dead_letter"] = str(work / "dead")
    result = LargeDataHandler(progress=False).process(
        str(Path(root) / source),
        transform=None,
        mode=mode,  # type: ignore[arg-type]
        on_error=policy,  # type: ignore[arg-type]
        sink=str(sink) if sink else None,
        **kwargs,
    )
    invalid: list[str] = []
    if sink is not None:
        out_rows, bad = _parquet_rows(sink) if sink.exists() else (0, [])
        invalid += bad
    elif result.output is not None:
        out_rows = result.output.height
        _validate(result.output.to_arrow(), "result.output", invalid)
    else:
        out_rows = 0
    skipped = sum(e.rows for e in result.errors if e.action == "skipped")
    dead_files = 0
    if policy == "dead_letter" and (work / "dead").exists():
        dead_files, bad = _parquet_rows(work / "dead")
        invalid += bad
    accounted = out_rows + (skipped if policy == "skip" else dead_files if policy == "dead_letter" else 0)
    return {
        "rows": out_rows,
        "accounted": accounted,
        "invalid": invalid,
        "rows_in": result.rows_in,
        "rows_out": result.rows_out,
        "skipped": skipped,
        "dead_letters": result.dead_letters,
        "dead_letter_file_rows": dead_files,
        "errors": [
            f"{e.error_type}: {e.message[:120]} [{e.action}, {e.rows} rows]" for e in result.errors[:3]
        ],
    }


def _selftest(op: str) -> dict[str, Any]:
    """Misbehaviours on demand, so the harness's own tests see each category caught."""
    import time

    from sygnify.errors import DataQualityError

    what = op.split(":", 1)[1]
    if what == "abort":
        os.abort()
    if what == "hang":
        time.sleep(3600)
    if what == "raw":
        raise ValueError("a raw exception")
    if what == "typed":
        raise DataQualityError("a typed error")
    if what == "invalid":
        import pyarrow as pa

        offsets = pa.py_buffer(b"\x00\x00\x00\x00\x01\x00\x00\x00")
        bad = pa.Array.from_buffers(pa.string(), 1, [None, offsets, pa.py_buffer(b"\xff")])  # not UTF-8
        invalid: list[str] = []
        _validate(pa.record_batch([bad], names=["s"]), "batch 0", invalid)
        return {"rows": 1, "accounted": 1, "invalid": invalid}
    return {"rows": int(what), "accounted": int(what), "invalid": []}


def run(root: str, source: str, op: str) -> dict[str, Any]:
    """Run ``op`` on ``source`` under ``root``, in this process; never raises."""
    from sygnify import CloudDataConnector
    from sygnify.errors import SygnifyError

    try:
        with tempfile.TemporaryDirectory(prefix="fuzz-work-") as work:
            if op.startswith("selftest:"):
                answer = _selftest(op)
            elif op.startswith("process:"):
                _, mode, policy = op.split(":")
                answer = run_process(root, source, mode, policy, Path(work))
            else:
                with CloudDataConnector() as hub:
                    lake = hub.connect("local", root=root, threads=2)
                    answer = {"stream": run_stream, "scan": run_scan, "query": run_query}[op](lake, source)
        return {"status": "ok", **answer}
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # Polars' PanicException is a BaseException
        kind = type(exc)
        return {
            "status": "error",
            "type": f"{kind.__module__}.{kind.__qualname__}",
            "typed": isinstance(exc, SygnifyError),
            "message": text(exc),
        }


def main() -> None:
    # A bit flip can declare a huge allocation: cap the address space, so that it fails here
    # (an abort or a MemoryError, both recorded) instead of pushing the machine into swap.
    import resource

    limit = int(os.environ.get("SYGNIFY_FUZZ_MEMORY_MB", "4096")) << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    # Answers go to the descriptor we were given as stdout; everything the library or its
    # native code prints lands on stderr instead, so it cannot corrupt the protocol.
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import sygnify.connectors.local
    import sygnify.processing  # noqa: F401  (imported before the first request: not timed)

    answers.write(json.dumps({"ready": True}) + "\n")
    import faulthandler

    for line in sys.stdin:
        request = json.loads(line)
        if request.get("timeout"):  # a hang leaves every thread's stack on stderr for the report
            faulthandler.dump_traceback_later(request["timeout"])
        answer = run(request["root"], request["source"], request["op"])
        faulthandler.cancel_dump_traceback_later()
        answers.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
