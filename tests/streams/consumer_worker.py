"""A consumer process for the crash test: ``python consumer_worker.py SPEC_JSON OUT_DIR``.

For every batch it appends the ids to ``processed.log`` (fsynced) and only then acks and
appends them to ``acked.log``. With ``stop_after`` set it processes one more batch after
that many acks and then hangs without acknowledging it, announcing ``hang.marker`` — the test
SIGKILLs it there, mid-stream. SIGTERM closes the source gracefully.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import pyarrow as pa

from tests.streams.backends import Backend

SCHEMA = pa.schema([("id", pa.int64()), ("temperature", pa.float64())])


def append(path: Path, ids: list[int]) -> None:
    with path.open("a") as handle:
        handle.write("".join(f"{i}\n" for i in ids))
        handle.flush()
        os.fsync(handle.fileno())


def main(spec: dict[str, Any], out: Path) -> None:
    backend = Backend(spec["kind"], name=spec["name"], bootstrap=spec.get("bootstrap"))
    source = backend.open(consumer="worker", schema=SCHEMA)
    signal.signal(signal.SIGTERM, lambda *_: source.close())
    stop_after = spec.get("stop_after")
    acked_batches = 0
    (out / "started.marker").touch()
    while not source.closed:
        batch = source.read(max_records=spec.get("batch", 10), timeout=0.5)
        if batch is None:
            continue
        ids = batch.batch.column("id").to_pylist()
        append(out / "processed.log", ids)
        if stop_after is not None and acked_batches >= stop_after:
            (out / "hang.marker").touch()
            while True:  # processed but never acknowledged: wait for SIGKILL
                time.sleep(1)
        batch.ack()
        append(out / "acked.log", ids)
        acked_batches += 1


if __name__ == "__main__":
    main(json.loads(sys.argv[1]), Path(sys.argv[2]))
