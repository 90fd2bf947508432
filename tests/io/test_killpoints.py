"""SIGKILL at every commit point of local dataset writes, then rerun: the same data, no leftovers.

SQLite-style crash testing. A writer runs once under a tracer that records every step it
takes on the file system below the test directory (``create`` of a file, ``fsync``,
``rename``, ``unlink``, ``mkdir``, ``rmdir``: every step of the one atomic write of
:mod:`sygnify.io.files` and of the commit protocol of :mod:`sygnify.io.commits`). Then, for
each step ``N`` of that trace, the same write starts again from the same state and is
SIGKILLed just before step ``N`` (the *named points*), and at random moments (the *random
points*, which also land inside writes the tracer cannot see, such as Polars' own sinks).
After each kill the job is rerun to its end, and:

* what sygnify reads back equals an uninterrupted run (rows sorted; the file names and their
  bytes where the names are deterministic),
* no temporary or staging file is left for a reader to see (``list("")``, ``stream``,
  ``scan``, DuckDB's ``read_parquet`` of the directory's files),
* no row is duplicated.

Children are forked from one warm process (a *zygote* that has imported sygnify), so a kill
point costs a fork rather than an interpreter start. ``SYGNIFY_FUZZ_LONG=1`` raises the
random points from a few per job kind to 100.

This module is also the harness of ``tests/processing/test_killpoints_incremental.py``.
"""

from __future__ import annotations

import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from sygnify import CloudDataConnector
from sygnify.io.commits import LOG_DIR, is_part_name
from sygnify.io.files import TEMP_PREFIX

REPO = Path(__file__).resolve().parents[2]
#: Random kill points per job kind: a few by default, 100 with SYGNIFY_FUZZ_LONG=1.
RANDOM_POINTS = 100 if os.environ.get("SYGNIFY_FUZZ_LONG") == "1" else 3

#: The steps the tracer counts (each a kill point).
STEPS = ("create", "fsync", "rename", "unlink", "mkdir", "rmdir")


# -- the tracer (installed in a forked child) ---------------------------------------------


class Tracer:
    """Counts the file-system steps below ``root``; SIGKILLs the process before step
    ``kill_at`` (1-based), or after a step for which ``kill_after(kind, path)`` is true."""

    def __init__(
        self,
        root: str,
        kill_at: int | None = None,
        kill_after: Callable[[str, str], bool] | None = None,
    ) -> None:
        self.root = os.path.realpath(root) + os.sep
        self.kill_at = kill_at
        self.kill_after = kill_after
        self.steps: list[str] = []

    def _mine(self, path: Any) -> str | None:
        try:
            full = os.path.realpath(os.fspath(path))
        except TypeError:
            return None
        return full[len(self.root) :] if full.startswith(self.root) else None

    def step(self, kind: str, path: Any, run: Callable[[], Any]) -> Any:
        relative = self._mine(path)
        if relative is None:
            return run()
        self.steps.append(f"{kind} {relative}")
        if len(self.steps) == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        result = run()
        if self.kill_after is not None and self.kill_after(kind, relative):
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    def install(self) -> None:
        real = {
            name: getattr(os, name)
            for name in ("open", "fsync", "replace", "rename", "unlink", "remove", "mkdir", "rmdir")
        }

        def open_(path: Any, flags: int, mode: int = 0o777, *, dir_fd: Any = None) -> int:
            call = lambda: real["open"](path, flags, mode, dir_fd=dir_fd)  # noqa: E731
            return self.step("create", path, call) if flags & os.O_CREAT else call()

        def fsync(fd: Any) -> None:
            number = fd if isinstance(fd, int) else fd.fileno()
            try:
                path = os.readlink(f"/proc/self/fd/{number}")
            except OSError:
                path = ""
            self.step("fsync", path, lambda: real["fsync"](fd))

        def replace(src: Any, dst: Any, **kw: Any) -> None:
            self.step("rename", dst, lambda: real["replace"](src, dst, **kw))

        def rename(src: Any, dst: Any, **kw: Any) -> None:
            self.step("rename", dst, lambda: real["rename"](src, dst, **kw))

        def unlink(path: Any, **kw: Any) -> None:
            self.step("unlink", path, lambda: real["unlink"](path, **kw))

        def mkdir(path: Any, mode: int = 0o777, **kw: Any) -> None:
            self.step("mkdir", path, lambda: real["mkdir"](path, mode, **kw))

        def rmdir(path: Any, **kw: Any) -> None:
            self.step("rmdir", path, lambda: real["rmdir"](path, **kw))

        os.open, os.fsync, os.replace, os.rename = open_, fsync, replace, rename  # type: ignore[assignment]
        os.unlink, os.remove, os.mkdir, os.rmdir = unlink, unlink, mkdir, rmdir  # type: ignore[assignment]


# -- scenarios ------------------------------------------------------------------------------


@dataclass
class Scenario:
    """One job kind: ``setup(d)`` builds the state before the job in directory ``d``,
    ``job(d)`` is the step under test (killed, then rerun), ``after(d)`` what happens
    between the kill and the rerun (new input files), ``outcome(d)`` a canonical read-back
    of the result, compared with an uninterrupted run's."""

    name: str
    setup: Callable[[Path], None]
    job: Callable[[Path], None]
    outcome: Callable[[Path], Any]
    #: directories (relative; "" for all of it) that must hold no temporaries after the rerun
    outputs: tuple[str, ...] = ()
    after: Callable[[Path], None] = lambda directory: None
    #: the rerun: the job again, by default
    rerun: Callable[[Path], None] | None = None
    random_points: int = field(default_factory=lambda: RANDOM_POINTS)


#: Every scenario by name (a forked child looks its scenario up here).
SCENARIOS: dict[str, Scenario] = {}


def register(scenario: Scenario) -> Scenario:
    SCENARIOS[scenario.name] = scenario
    return scenario


# -- the zygote: one warm process that forks a child per kill point ------------------------

ZYGOTE = textwrap.dedent(
    """
    import importlib, json, os, signal, sys, threading
    modules = sys.argv[1:]
    for name in modules:
        importlib.import_module(name)
    harness = importlib.import_module("tests.io.test_killpoints")
    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            try:
                scenario = harness.SCENARIOS[request["scenario"]]
                aim = request.get("aim")
                tracer = harness.Tracer(
                    request["directory"], request.get("kill_at"),
                    harness.AIMS[aim] if aim else None,
                )
                tracer.install()
                if request.get("delay") is not None:
                    timer = threading.Timer(request["delay"], os.kill, (os.getpid(), signal.SIGKILL))
                    timer.daemon = True
                    timer.start()
                scenario.job(harness.Path(request["directory"]))
                with open(request["trace"], "w") as out:
                    json.dump(tracer.steps, out)
                os._exit(0)
            except BaseException:
                import traceback
                traceback.print_exc()
                os._exit(3)
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(json.dumps({"code": code}), flush=True)
    """
)

#: Named ``kill_after`` predicates (a child gets its predicate by name).
AIMS: dict[str, Callable[[str, str], bool]] = {}


class Zygote:
    """A warm Python process that has imported the scenario modules and forks one child per
    request (a fork after imports only: no Polars or Arrow thread pool exists yet)."""

    def __init__(self, modules: list[str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE, *modules],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert self._line(120) == "ready"

    def _line(self, timeout: float) -> str:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        assert ready, f"the zygote did not answer within {timeout} s"
        return self.process.stdout.readline().strip()

    def run(self, **request: Any) -> int:
        """Run a scenario's job in a forked child; its exit code (-9: killed)."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return int(json.loads(self._line(120))["code"])

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture(scope="session")
def zygote() -> Iterator[Zygote]:
    warm = Zygote(["tests.io.test_killpoints", "tests.processing.test_killpoints_incremental"])
    yield warm
    warm.close()


# -- the checks -------------------------------------------------------------------------------


def leftovers(directory: Path) -> list[str]:
    """Temporary files (of the atomic write or of the streaming engine) below ``directory``."""
    found: list[str] = []
    for path in directory.rglob("*"):
        name = path.name
        if name.startswith(TEMP_PREFIX) or (name.startswith(".") and name.endswith(".tmp")):
            found.append(str(path.relative_to(directory)))
    return found


def uncommitted_parts(dataset: Path) -> list[str]:
    """Parts of writes that never committed (no commit object names their token)."""
    log = dataset / LOG_DIR
    tokens = {p.name.split("-", 1)[1].split(".", 1)[0] for p in log.iterdir()} if log.is_dir() else set()
    return sorted(
        str(p.relative_to(dataset))
        for p in dataset.rglob("part-*")
        if is_part_name(p.name) and p.name.split("-")[2].split(".")[0] not in tokens
    )


def duckdb_rows(directory: Path, pattern: str = "*") -> int:
    """Rows DuckDB reads from the files of ``directory`` that ``pattern`` matches, by its
    own glob (which, unlike sygnify's, matches hidden names)."""
    if not any(directory.glob(pattern)):
        return 0
    pattern = f"{directory}/{pattern}"
    connection = duckdb.connect()
    try:
        sql = f"SELECT count(*) FROM read_parquet('{pattern}', hive_partitioning=false)"
        return int(connection.execute(sql).fetchall()[0][0])
    finally:
        connection.close()


@dataclass
class KillReport:
    named: int = 0
    random: int = 0
    killed: int = 0
    steps: list[str] = field(default_factory=list)


def kill_everywhere(zygote: Zygote, scenario: Scenario, tmp_path: Path, *, seed: int = 0) -> KillReport:
    """Kill ``scenario``'s job before each traced step and at random moments; after each
    kill, rerun and compare with an uninterrupted run. Returns what was tested."""
    # Every run happens in one directory (checkpoints hold absolute paths): set up there,
    # kept aside, and put back before each run.
    work, base = tmp_path / "work", tmp_path / "base"
    work.mkdir()
    scenario.setup(work)
    shutil.copytree(work, base)

    def fresh() -> Path:
        shutil.rmtree(work)
        shutil.copytree(base, work)
        return work

    started = time.perf_counter()
    trace_file = tmp_path / "trace.json"
    assert zygote.run(scenario=scenario.name, directory=str(fresh()), trace=str(trace_file)) == 0
    seconds = time.perf_counter() - started
    steps: list[str] = json.loads(trace_file.read_text())
    assert steps, f"{scenario.name}: the tracer saw no step"
    scenario.after(work)
    (scenario.rerun or scenario.job)(work)
    expected = scenario.outcome(work)

    report = KillReport(steps=steps)
    rng = random.Random(seed)
    points: list[dict[str, Any]] = [{"kill_at": n} for n in range(1, len(steps) + 1)]
    points += [{"delay": rng.uniform(0.0, seconds)} for _ in range(scenario.random_points)]
    for point in points:
        directory = fresh()
        code = zygote.run(
            scenario=scenario.name, directory=str(directory), trace=str(tmp_path / "t.json"), **point
        )
        assert code in (0, -9), f"{scenario.name} {point}: the child failed (exit {code})"
        report.killed += code == -9
        if "kill_at" in point:
            report.named += 1
            step = steps[point["kill_at"] - 1]
            assert code == -9, f"{scenario.name}: no kill at step {point['kill_at']} ({step})"
            where = f"step {point['kill_at']} ({step})"
        else:
            report.random += 1
            where = f"{point['delay']:.3f} s"
        scenario.after(directory)
        (scenario.rerun or scenario.job)(directory)
        got = scenario.outcome(directory)
        assert got == expected, f"{scenario.name}: killed before {where}, the rerun differs"
        for output in scenario.outputs:
            found = leftovers(directory / output)
            assert found == [], f"{scenario.name}: killed before {where}: leftovers {found}"
    assert report.named == len(steps)
    print(f"{scenario.name}: {report.named} named + {report.random} random kill points")
    return report


# -- local dataset writes ----------------------------------------------------------------------

ROWS = 600


def batch(number: int, rows: int = ROWS) -> pa.Table:
    regions = ["eu", "us", "apac"]
    return pa.table(
        {
            "batch": [number] * rows,
            "region": [regions[i % 3] for i in range(rows)],
            "v": list(range(rows)),
        }
    )


def lake(directory: Path) -> Any:
    return CloudDataConnector().connect("local", root=directory)


def dataset_outcome(directory: Path) -> Any:
    """What sygnify reads of ``ds/`` (sorted rows, by stream and by scan), what ``list`` shows,
    and what DuckDB reads of the raw files (it does not know the commit log)."""
    connection = lake(directory)
    streamed = pa.Table.from_batches(list(connection.stream("ds/")))
    scanned = connection.scan("ds/").collect()
    rows = sorted(zip(*(streamed.column(c).to_pylist() for c in ("batch", "region", "v")), strict=True))
    scanned_rows = sorted(scanned.select("batch", "region", "v").iter_rows())
    assert rows == scanned_rows
    listed = connection.list("")
    hidden = [p for p in listed if "/." in f"/{p}" or p.rsplit("/", 1)[-1].startswith(TEMP_PREFIX)]
    assert hidden == [], f"list('') shows temporaries: {hidden}"
    assert uncommitted_parts(directory / "ds") == [], "parts of a crashed write are left behind"
    partitioned = (directory / "ds" / "region=eu").is_dir()
    return rows, duckdb_rows(directory / "ds", "*/*.parquet" if partitioned else "*.parquet")


def _writes(mode: str, partition_by: list[str] | None, write_id: str | None) -> Scenario:
    def setup(directory: Path) -> None:
        lake(directory).write(batch(1), "ds/", partition_by=partition_by)
        lake(directory).write(batch(2), "ds/", mode="append", partition_by=partition_by)

    def job(directory: Path) -> None:
        lake(directory).write(batch(3), "ds/", mode=mode, partition_by=partition_by, write_id=write_id)

    suffix = "-partitioned" if partition_by else ""
    return register(Scenario(f"dataset-{mode}{suffix}", setup, job, dataset_outcome, outputs=("",)))


# Append needs a write_id for exactly-once: a rerun of an append that committed before the
# kill finds its commit and writes nothing (without one, a retried append appends again).
DATASET_SCENARIOS = [
    _writes("overwrite", None, None),
    _writes("append", None, "load-3"),
    _writes("overwrite", ["region"], None),
    _writes("append", ["region"], "load-3"),
]


@pytest.mark.parametrize("scenario", DATASET_SCENARIOS, ids=lambda s: s.name)
def test_a_dataset_write_killed_at_every_step_then_rerun_reads_back_the_same(
    zygote: Zygote, tmp_path: Path, scenario: Scenario
) -> None:
    assert len(kill_everywhere(zygote, scenario, tmp_path).steps) >= 4


def test_the_temporaries_of_crashed_writes_are_found_on_any_filesystem(tmp_path: Path) -> None:
    """What the next run deletes: every temporary below a directory, or only those of one
    file beside it; locally and through a pyarrow filesystem (the object-store branch)."""
    import pyarrow.fs as pafs

    from sygnify.io.files import remove_temporaries

    names = {
        "out/.sygnify-tmp-" + "a" * 32 + "-part-00000001.parquet.tmp": True,
        "out/k=1/.sygnify-tmp-" + "b" * 32 + "-part-00000002-0.parquet.tmp": True,
        "out/.part-00000003.parquet.0123456789ab.tmp": True,  # the streaming engine's
        "out/part-00000001.parquet": False,
        "out/.hidden": False,
        ".sygnify-tmp-" + "c" * 32 + "-agg.parquet.tmp": True,
        ".sygnify-tmp-" + "d" * 32 + "-other.parquet.tmp": False,  # another file's
    }
    for filesystem in (None, pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())):
        for name in names:
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_bytes(b"")
        root = str(tmp_path) if filesystem is None else "."
        out = f"{tmp_path}/out" if filesystem is None else "out"
        removed = remove_temporaries(out, filesystem=filesystem)
        removed += remove_temporaries(root, filesystem=filesystem, of="agg.parquet")
        assert sorted(Path(path).name for path in removed) == sorted(
            Path(name).name for name, gone in names.items() if gone
        )
        assert all((tmp_path / name).exists() != gone for name, gone in names.items())
