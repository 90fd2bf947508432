"""Coverage-guided fuzz targets, one per reader, for atheris (``nox -s fuzz``).

Each target takes the bytes of one file, writes it under a private root and reads it through
the local connector in this process: ``stream()`` (every batch must pass
``validate(full=True)``) and ``scan().collect()``; when both succeed they must agree on the
row count. A :class:`sygnify.errors.SygnifyError` is the expected answer to a bad file;
anything else propagates, and so does a crash, which is what atheris reports.

Run one target for a minute, restarted after each finding (the other libFuzzer flags pass
through; findings go to ``-artifact_prefix``, default ``fuzz-findings-<target>/``), or rerun one
finding::

    python -m tests.fuzz.targets csv -max_total_time=60 -artifact_prefix=/tmp/found/ /tmp/corpus-csv
    python -m tests.fuzz.targets csv /tmp/found/crash-1234

Without atheris the targets are plain functions (``tests/fuzz/test_targets.py`` calls them):

>>> TARGETS["csv"](b"a,b\\n1,2\\n")
1
"""

from __future__ import annotations

import itertools
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["TARGETS", "fuzz", "main", "write_corpus"]

_EXTENSIONS = {"csv": "csv", "jsonl": "jsonl", "parquet": "parquet", "ipc": "arrow"}
_state: dict[str, Any] = {}
_names = itertools.count()


def _lake() -> Any:
    if "lake" not in _state:
        from sygnify import CloudDataConnector

        _state["root"] = Path(tempfile.mkdtemp(prefix="sygnify-fuzz-target-"))
        _state["hub"] = CloudDataConnector()
        _state["lake"] = _state["hub"].connect("local", root=str(_state["root"]), threads=1)
    return _state["lake"]


def read(data: bytes, fmt: str) -> int | None:
    """Rows ``stream()`` and ``scan()`` agree ``data`` holds, or None if sygnify refused it."""
    from sygnify.errors import SygnifyError

    lake = _lake()
    # A fresh name per input: nothing cached for an earlier file can answer for this one.
    name = f"in-{next(_names)}.{_EXTENSIONS[fmt]}"
    path = _state["root"] / name
    path.write_bytes(data)
    try:
        streamed: int | None = 0
        try:
            for batch in lake.stream(name):
                batch.validate(full=True)  # an invalid batch raises ArrowInvalid: a finding
                streamed += batch.num_rows  # type: ignore[operator]
        except SygnifyError:
            streamed = None
        try:
            frame = lake.scan(name).collect()
            frame.to_arrow().validate(full=True)
            scanned: int | None = frame.height
        except SygnifyError:
            scanned = None
        if streamed is not None and scanned is not None and streamed != scanned:
            raise AssertionError(f"stream() returned {streamed} rows, scan() {scanned}")
        return streamed if streamed is not None else scanned
    finally:
        path.unlink()


def _target(fmt: str) -> Callable[[bytes], int | None]:
    def target(data: bytes) -> int | None:
        return read(data, fmt)

    target.__name__ = f"{fmt}_target"
    return target


TARGETS: dict[str, Callable[[bytes], int | None]] = {fmt: _target(fmt) for fmt in _EXTENSIONS}


def write_corpus(fmt: str, folder: Path, seed: int = 1, count: int = 400) -> int:
    """Seed ``folder`` with the structural generators' files of format ``fmt``; returns how many."""
    from tests.fuzz.generators import iter_corpus

    folder.mkdir(parents=True, exist_ok=True)
    suffixes = {"ipc": (".arrow", ".ipc", ".feather")}.get(fmt, (f".{_EXTENSIONS[fmt]}",))
    written = 0
    for name, data in iter_corpus(seed, count):
        if name.endswith(suffixes) and len(data) <= 64_000:
            (folder / name).write_bytes(data)
            written += 1
    return written


def fuzz(argv: list[str]) -> None:
    """``fuzz(["csv", "-max_total_time=60", CORPUS])``: one libFuzzer run, ending at its first finding."""
    import atheris

    fmt, flags = argv[0], argv[1:]
    with atheris.instrument_imports(include=["sygnify"]):
        # Imported here to be instrumented for coverage.
        import sygnify.connectors.local
        import sygnify.io  # noqa: F401
    target = TARGETS[fmt]
    atheris.Setup([sys.argv[0], *flags], lambda data: target(bytes(data)))
    atheris.Fuzz()


def main(argv: list[str]) -> int:
    """``main(["csv", "-max_total_time=60", "-artifact_prefix=DIR/", CORPUS])``: fuzz for the whole time.

    libFuzzer stops at its first finding (and atheris has no fork mode), so the run is restarted
    with the time left, after taking out of the corpus a seed that was the finding itself, until
    the time is spent. A file argument instead of a corpus folder reruns that one input.
    Returns how many findings (``crash-*``, ``timeout-*``, ``oom-*`` files) the folder holds.
    """
    import subprocess
    import time

    fmt, flags = argv[0], argv[1:]
    if any(Path(arg).is_file() for arg in flags if not arg.startswith("-")):
        fuzz(argv)
        return 0
    total = next((float(f.split("=", 1)[1]) for f in flags if f.startswith("-max_total_time=")), 60.0)
    flags = [f for f in flags if not f.startswith("-max_total_time=")]
    prefix = next((f.split("=", 1)[1] for f in flags if f.startswith("-artifact_prefix=")), None)
    if prefix is None:
        prefix = f"fuzz-findings-{fmt}/"
        flags.append(f"-artifact_prefix={prefix}")
    artifacts = Path(prefix if prefix.endswith("/") else Path(prefix).parent)
    artifacts.mkdir(parents=True, exist_ok=True)
    corpus = [Path(arg) for arg in flags if not arg.startswith("-")]
    for folder in corpus:
        print(f"{fmt}: {write_corpus(fmt, folder)} seed inputs in {folder}", flush=True)
    seen = set(artifacts.iterdir())
    deadline = time.monotonic() + total
    while (left := int(deadline - time.monotonic())) >= 5:
        command = [
            sys.executable,
            "-m",
            "tests.fuzz.targets",
            "--one",
            fmt,
            *flags,
            f"-max_total_time={left}",
        ]
        subprocess.run(command, check=False)
        new = set(artifacts.iterdir()) - seen
        if not new:
            break  # the time ran out without a finding
        seen |= new
        findings = {path.read_bytes() for path in new}
        for folder in corpus:
            for seed in folder.iterdir():
                if seed.read_bytes() in findings:
                    seed.unlink()  # a seed that is a finding would end every restart at once
    found = [p for p in artifacts.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-"))]
    print(f"{fmt}: {len(found)} findings in {artifacts}", flush=True)
    return len(found)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        fuzz(sys.argv[2:])
    else:
        main(sys.argv[1:])
