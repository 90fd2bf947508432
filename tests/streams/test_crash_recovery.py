"""Kill a consumer with SIGKILL mid-stream, restart it: nothing acknowledged is lost.

At-least-once means: every produced message is processed at least once across both runs,
the batch that was processed but not acknowledged when the process died is delivered again,
and messages acknowledged before the kill are not needed again for completeness.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tests.streams.backends import Backend
from tests.streams.test_sources import payload

WORKER = Path(__file__).with_name("consumer_worker.py")
TOTAL = 120


def start_worker(backend: Backend, out: Path, *, stop_after: int | None) -> subprocess.Popen[bytes]:
    spec = {
        "kind": backend.kind,
        "name": backend.name,
        "bootstrap": backend.bootstrap,
        "stop_after": stop_after,
    }
    return subprocess.Popen([sys.executable, str(WORKER), json.dumps(spec), str(out)])


def wait_for(condition: object, what: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        if process.poll() is not None:
            raise AssertionError(f"worker exited with {process.returncode} before {what}")
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"timed out waiting for {what}")


def read_ids(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def test_sigkill_mid_stream_loses_no_acknowledged_message(backend: Backend, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    worker = start_worker(backend, first, stop_after=3)
    try:
        wait_for(lambda: (first / "started.marker").exists(), "the first worker started", worker)
        backend.produce([payload(i) for i in range(TOTAL)])
        wait_for(
            lambda: (first / "hang.marker").exists(), "three acked batches and a fourth in flight", worker
        )
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
    acked_before = read_ids(first / "acked.log")
    processed_before = read_ids(first / "processed.log")
    in_flight = set(processed_before) - set(acked_before)
    assert acked_before, "some batches were acknowledged before the kill"
    assert in_flight, "the kill happened with a processed batch not yet acknowledged"

    restarted = start_worker(backend, second, stop_after=None)
    try:
        everything = set(range(TOTAL))
        wait_for(
            lambda: set(acked_before) | set(read_ids(second / "acked.log")) >= everything,
            "every message acknowledged after the restart",
            restarted,
            timeout=90,
        )
    finally:
        restarted.send_signal(signal.SIGTERM)  # graceful shutdown
        assert restarted.wait(30) == 0

    processed_after = read_ids(second / "processed.log")
    counts = Counter(processed_before + processed_after)
    assert set(counts) == set(range(TOTAL)), "every produced message was processed at least once"
    assert in_flight <= set(processed_after), "the unacknowledged batch was delivered again"
    assert set(acked_before) | set(read_ids(second / "acked.log")) == set(range(TOTAL))
