"""LargeDataHandler over an ``s3://`` Parquet dataset (moto server), as files and via the connector."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from sygnify import CloudDataConnector
from sygnify.errors import ConcurrentRunError
from sygnify.processing import Aggregate, Checkpoint, FileSource, LargeDataHandler, ParquetSink
from tests.emulators import EmulatorUnavailable
from tests.emulators.moto import MotoServer, moto_server
from tests.processing.conftest import convert
from tests.services import require

pytestmark = pytest.mark.emulator

SPEC = Aggregate(by="account_id", usd=("usd", "sum"), n=("usd", "len"))


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer | None]:
    try:
        with moto_server() as server:
            yield server
    except EmulatorUnavailable:
        yield None


@pytest.fixture(scope="module")
def s3_dataset(moto: MotoServer | None, tx_files: Path) -> tuple[MotoServer, str, pafs.S3FileSystem]:
    require(moto is not None, "moto server could not be installed or started")
    assert moto is not None
    fs = pafs.S3FileSystem(
        endpoint_override=moto.endpoint,
        access_key="testing",
        secret_key="testing-secret",
        region="us-east-1",
        allow_bucket_creation=True,
    )
    bucket = f"sygnify-{uuid.uuid4().hex[:12]}"
    fs.create_dir(bucket)
    for file in sorted(tx_files.glob("*.parquet")):
        fs.open_output_stream(f"{bucket}/tx/{file.name}").write(file.read_bytes())
    return moto, bucket, fs


@pytest.mark.parametrize("mode", ["streaming", "chunked", "parallel"])
def test_handler_on_s3_files(s3_dataset: tuple[MotoServer, str, Any], tx_files: Path, mode: str) -> None:
    _, bucket, fs = s3_dataset
    handler = LargeDataHandler(chunk_size=9_000, max_workers=2, progress=False)
    result = handler.process(FileSource(f"{bucket}/tx/", filesystem=fs), transform=[convert, SPEC], mode=mode)
    expected = SPEC.over(convert(pl.scan_parquet(tx_files / "*.parquet"))).collect()
    assert result.output is not None
    assert_frame_equal(result.output, expected, check_exact=False)
    assert result.rows_in == 60_000


def test_handler_on_s3_via_connector(s3_dataset: tuple[MotoServer, str, Any], tx_files: Path) -> None:
    server, bucket, _ = s3_dataset
    with CloudDataConnector(environ={}) as hub:
        lake = hub.connect(
            "s3",
            name="lake",
            bucket=bucket,
            endpoint_url=server.endpoint,
            region="us-east-1",
            access_key_id="testing",
            secret_access_key="testing-secret",
        )
        result = LargeDataHandler(chunk_size=9_000, progress=False).process(
            (lake, f"s3://{bucket}/tx/"), transform=[convert, SPEC], mode="chunked"
        )
    expected = SPEC.over(convert(pl.scan_parquet(tx_files / "*.parquet"))).collect()
    assert result.output is not None
    assert_frame_equal(result.output, expected, check_exact=False)
    assert result.rows_in == 60_000


def test_incremental_with_checkpoint_and_output_on_s3(
    s3_dataset: tuple[MotoServer, str, Any], tx_files: Path
) -> None:
    """New-file mode with source, output dataset, aggregate and checkpoint all on the object store."""
    _, bucket, fs = s3_dataset
    prefix = f"{bucket}/inc-{uuid.uuid4().hex[:8]}"
    files = sorted(tx_files.glob("*.parquet"))
    handler = LargeDataHandler(chunk_size=9_000, progress=False)

    def run() -> Any:
        rows = handler.process(
            FileSource(f"{prefix}/in/", filesystem=fs),
            transform=convert,
            mode="incremental",
            sink=ParquetSink(f"{prefix}/rows/", filesystem=fs),
            checkpoint=Checkpoint(f"{prefix}/state/rows.json", filesystem=fs, interval=0),
        )
        totals = handler.process(
            FileSource(f"{prefix}/in/", filesystem=fs),
            transform=[convert, SPEC],
            mode="incremental",
            sink=ParquetSink(f"{prefix}/agg.parquet", filesystem=fs),
            checkpoint=Checkpoint(f"{prefix}/state/agg.json", filesystem=fs),
        )
        return rows, totals

    for file in files[:2]:
        fs.open_output_stream(f"{prefix}/in/{file.name}").write(file.read_bytes())
    first_rows, _ = run()
    assert first_rows.rows_in == 40_000
    fs.open_output_stream(f"{prefix}/in/{files[2].name}").write(files[2].read_bytes())
    again_rows, again_totals = run()
    assert again_rows.rows_in == 20_000  # only the new file
    assert again_totals.rows_in == 20_000

    expected_rows = convert(pl.scan_parquet(tx_files / "*.parquet")).collect().sort("transaction_id")
    written = pl.from_arrow(pq.ParquetDataset(f"{prefix}/rows/", filesystem=fs).read())
    assert isinstance(written, pl.DataFrame)
    assert_frame_equal(written.sort("transaction_id"), expected_rows)
    expected_totals = SPEC.over(convert(pl.scan_parquet(tx_files / "*.parquet"))).collect()
    with fs.open_input_file(f"{prefix}/agg.parquet") as handle:
        totals = pl.read_parquet(handle)
    assert_frame_equal(totals, expected_totals, check_exact=False)
    state = Checkpoint(f"{prefix}/state/agg.json", filesystem=fs).load()
    assert state is not None
    assert len(state["files"]) == 3


def _lease(fs: Any, path: str) -> dict[str, Any] | None:
    try:
        with fs.open_input_stream(path) as stream:
            value: dict[str, Any] = json.loads(stream.read())
            return value
    except FileNotFoundError:
        return None


def _plant_lease(fs: Any, path: str, *, expires_in: float) -> None:
    """The lease another run (on another host) holds, or left behind when it died."""
    body = {
        "host": "other-host",
        "pid": 4242,
        "run": "other",
        "since": time.time(),
        "expires": time.time() + expires_in,
    }
    with fs.open_output_stream(path) as stream:
        stream.write(json.dumps(body).encode())


def test_object_store_lease_refuses_a_second_run_and_expires_after_a_dead_one(
    s3_dataset: tuple[MotoServer, str, Any], tx_files: Path
) -> None:
    _, bucket, fs = s3_dataset
    prefix = f"{bucket}/lease-{uuid.uuid4().hex[:8]}"
    with fs.open_output_stream(f"{prefix}/in/a.parquet") as stream:
        stream.write(sorted(tx_files.glob("*.parquet"))[0].read_bytes())
    handler = LargeDataHandler(chunk_size=9_000, progress=False)

    def run() -> Any:
        return handler.process(
            FileSource(f"{prefix}/in/", filesystem=fs),
            transform=convert,
            mode="incremental",
            sink=ParquetSink(f"{prefix}/rows/", filesystem=fs),
            checkpoint=Checkpoint(f"{prefix}/state.json", filesystem=fs, lock_ttl=2),
        )

    lock = f"{prefix}/state.json.lock"
    _plant_lease(fs, lock, expires_in=60)  # a live run elsewhere
    with pytest.raises(ConcurrentRunError, match="pid 4242 on other-host"):
        run()
    assert fs.get_file_info(f"{prefix}/rows/").type == pafs.FileType.NotFound  # nothing written
    _plant_lease(fs, lock, expires_in=-1)  # that run died and its lease ran out
    assert run().rows_in == 20_000
    assert _lease(fs, lock) is None  # released at the end of the run


def test_object_store_lease_is_renewed_while_the_run_goes_on(s3_dataset: tuple[MotoServer, str, Any]) -> None:
    _, bucket, fs = s3_dataset
    path = f"{bucket}/lease-{uuid.uuid4().hex[:8]}/state.json"
    with Checkpoint(path, filesystem=fs, lock_ttl=1.5).lock():
        first = _lease(fs, f"{path}.lock")
        assert first is not None
        time.sleep(3.5)  # longer than the ttl: the heartbeat keeps it
        renewed = _lease(fs, f"{path}.lock")
        assert renewed is not None
        assert renewed["run"] == first["run"]
        assert renewed["expires"] > first["expires"]
        with pytest.raises(ConcurrentRunError, match="in progress"), Checkpoint(path, filesystem=fs).lock():
            pass
    assert _lease(fs, f"{path}.lock") is None


def test_object_store_lease_lost_while_paused_stops_commits(s3_dataset: tuple[MotoServer, str, Any]) -> None:
    _, bucket, fs = s3_dataset
    path = f"{bucket}/lease-{uuid.uuid4().hex[:8]}/state.json"
    store = Checkpoint(path, filesystem=fs, lock_ttl=60)  # no renewal within the test
    with store.lock():
        store.save({"seq": 1})
        # This run was paused past its lease; another run took the job over meanwhile.
        _plant_lease(fs, f"{path}.lock", expires_in=60)
        with pytest.raises(ConcurrentRunError, match="lost its lock"):
            store.save({"seq": 2})
        with pytest.raises(ConcurrentRunError, match="lost its lock"):
            store.write_table("s1.k", pl.DataFrame({"k": [1]}))
    loaded = store.load()
    assert loaded is not None
    assert loaded["seq"] == 1  # the commit after the loss did not happen
    lease = _lease(fs, f"{path}.lock")
    assert lease is not None
    assert lease["host"] == "other-host"  # the new holder's lease is left alone


def test_object_store_lease_not_renewed_for_a_ttl_counts_as_lost(
    s3_dataset: tuple[MotoServer, str, Any],
) -> None:
    """Renewals that fail for a whole ttl (or a paused process) end the run's lock even
    though the lease object still names it: another run may have taken it meanwhile."""
    _, bucket, fs = s3_dataset
    path = f"{bucket}/lease-{uuid.uuid4().hex[:8]}/state.json"
    store = Checkpoint(path, filesystem=fs, lock_ttl=1)
    with store.lock() as held:
        store.save({"seq": 1})
        held._stop.set()  # type: ignore[attr-defined]  # the heartbeat stops, as in a pause
        held._heartbeat.join()  # type: ignore[attr-defined]
        time.sleep(1.1)
        with pytest.raises(ConcurrentRunError, match="not renewed"):
            store.save({"seq": 2})
    loaded = store.load()
    assert loaded is not None
    assert loaded["seq"] == 1


def test_a_run_that_lost_its_lease_does_not_publish_its_result(
    s3_dataset: tuple[MotoServer, str, Any], tx_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The aggregate result is written only while the lease is held: a run taken over
    just before publishing leaves the sink to the run that took over."""
    _, bucket, fs = s3_dataset
    prefix = f"{bucket}/publish-{uuid.uuid4().hex[:8]}"
    with fs.open_output_stream(f"{prefix}/in/a.parquet") as stream:
        stream.write(sorted(tx_files.glob("*.parquet"))[0].read_bytes())
    original = Aggregate.finalize

    def taken_over_before_publishing(self: Aggregate, partial: Any) -> Any:
        _plant_lease(fs, f"{prefix}/state.json.lock", expires_in=60)
        return original(self, partial)

    monkeypatch.setattr(Aggregate, "finalize", taken_over_before_publishing)
    with pytest.raises(ConcurrentRunError, match="lost its lock"):
        LargeDataHandler(chunk_size=9_000, progress=False).process(
            FileSource(f"{prefix}/in/", filesystem=fs),
            transform=[convert, SPEC],
            mode="incremental",
            sink=ParquetSink(f"{prefix}/agg.parquet", filesystem=fs),
            checkpoint=Checkpoint(f"{prefix}/state.json", filesystem=fs),
        )
    assert fs.get_file_info(f"{prefix}/agg.parquet").type == pafs.FileType.NotFound
