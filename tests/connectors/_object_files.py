"""Checks of open()/copy()/move()/presigned_url() that S3 and Azure Blob share (issue #13).

Each function exercises one behaviour against a live store connection (moto, Azurite);
``tests/connectors/s3/test_files.py`` and ``tests/connectors/azure_blob/test_files.py`` run
them over the wire with the official SDKs underneath.
"""

from __future__ import annotations

import hashlib
import io
import urllib.error
import urllib.request
import zipfile
from typing import Any

import pyarrow.parquet as pq
import pytest

from sygnify.connectors._objectstore.store import ObjectStore
from sygnify.errors import ConfigurationError, ObjectNotFoundError, PathEscapeError
from sygnify.testing.connectors import sample_table

MiB = 1024 * 1024


def parquet_bytes(rows: int = 20_000) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(sample_table(rows), buffer, row_group_size=5_000)
    return buffer.getvalue()


def check_reads_parquet_zip_and_text(store: ObjectStore[Any]) -> None:
    data = parquet_bytes()
    store.put("files/t.parquet", data)
    with store.open("files/t.parquet") as handle:
        parquet = pq.ParquetFile(handle)
        assert parquet.metadata.num_rows == 20_000
        assert parquet.read_row_group(2, columns=["id"]).column("id")[0].as_py() == 10_000
        assert handle.seekable()
        assert handle.size == len(data)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as writer:
        writer.writestr("a.txt", "alpha\n")
        writer.writestr("b/c.txt", "gamma\n" * 1000)
    store.put("files/t.zip", archive.getvalue())
    with store.open("files/t.zip") as handle, zipfile.ZipFile(handle) as reader:
        assert reader.namelist() == ["a.txt", "b/c.txt"]
        assert reader.read("b/c.txt") == b"gamma\n" * 1000
    store.put("files/t.csv", "id,name\n1,zoë\n2,ada\n".encode())
    with io.TextIOWrapper(store.open("files/t.csv"), encoding="utf-8") as text:
        assert text.readlines() == ["id,name\n", "1,zoë\n", "2,ada\n"]
    with store.open("files/t.csv", "r") as text:
        assert text.read().splitlines()[1] == "1,zoë"
    with store.open("files/t.csv", block_size=4) as handle:
        assert handle.seek(-4, io.SEEK_END) == len("id,name\n1,zoë\n2,ada\n".encode()) - 4
        assert handle.read() == b"ada\n"
        handle.seek(3)
        assert handle.read(4) == b"name"


def check_open_refuses_missing_and_bad_names(store: ObjectStore[Any]) -> None:
    with pytest.raises(ObjectNotFoundError):
        store.open("files/never-written.bin")
    with pytest.raises(PathEscapeError):
        store.open("files/../escape.bin", "wb")
    with pytest.raises(ConfigurationError, match="mode"):
        store.open("files/x.bin", "ab")  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError, match="prefix"):
        store.open("files/")


def check_writes_publish_on_close_only(store: ObjectStore[Any], part_size: int) -> None:
    payload = bytes(range(256)) * ((2 * part_size + 12345) // 256)
    with store.open("files/big.bin", "wb") as out:
        for start in range(0, len(payload), 1_000_000):
            out.write(payload[start : start + 1_000_000])
        assert not store.exists("files/big.bin")  # parts are in flight, nothing is visible
    assert hashlib.sha256(store.get("files/big.bin")).digest() == hashlib.sha256(payload).digest()
    with store.open("files/small.txt", "w") as text:
        text.write("zoë\n")
    assert store.get("files/small.txt") == "zoë\n".encode()


def check_exception_inside_with_leaves_no_object(store: ObjectStore[Any], part_size: int) -> None:
    def fail_binary(size: int) -> None:
        with store.open("files/aborted.bin", "wb") as out:
            out.write(b"x" * size)
            raise RuntimeError("producer failed")

    def fail_text() -> None:
        with store.open("files/kept.txt", "w") as text:
            text.write("new")
            raise KeyError("boom")

    for size in (10, 2 * part_size + 1):  # one request, and a multipart/block upload
        with pytest.raises(RuntimeError, match="producer"):
            fail_binary(size)
        assert not store.exists("files/aborted.bin")
    store.put("files/kept.txt", b"old")
    with pytest.raises(KeyError):
        fail_text()
    assert store.get("files/kept.txt") == b"old"


def check_copy_and_move(store: ObjectStore[Any], other_bucket_url: str) -> None:
    store.put("files/src.txt", b"payload", content_type="text/plain", metadata={"owner": "ops"})
    info = store.copy("files/src.txt", "files/copy.txt")
    assert (info.key, info.size, info.content_type, dict(info.metadata)) == (
        "files/copy.txt",
        7,
        "text/plain",
        {"owner": "ops"},
    )
    assert store.get("files/copy.txt") == b"payload"
    elsewhere = f"{other_bucket_url}/moved/src.txt"
    moved = store.move("files/copy.txt", elsewhere)
    assert moved.bucket != info.bucket
    assert moved.key == "moved/src.txt"
    assert store.get(elsewhere) == b"payload"
    assert not store.exists("files/copy.txt")
    # onto itself: nothing changes (a move must not delete its own target)
    assert store.move("files/src.txt", "files/src.txt").size == 7
    assert store.copy("files/src.txt", "files/src.txt").size == 7
    assert store.get("files/src.txt") == b"payload"
    with pytest.raises(ObjectNotFoundError):
        store.copy("files/nope.txt", "files/x.txt")
    with pytest.raises(ObjectNotFoundError):
        store.move("files/nope.txt", "files/x.txt")
    assert not store.exists("files/x.txt")
    with pytest.raises(PathEscapeError):
        store.copy("files/src.txt", "files/../x.txt")
    with pytest.raises(PathEscapeError):
        store.move("files/../src.txt", "files/x.txt")


def http(url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """``(status, body)`` of one plain urllib request (PUT when ``data`` is given)."""
    request = urllib.request.Request(url, data=data, method="PUT" if data is not None else "GET")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def check_presigned_get_and_put(store: ObjectStore[Any], put_headers: dict[str, str]) -> None:
    store.put("files/shared.bin", b"for your eyes")
    status, body = http(store.presigned_url("files/shared.bin", expires=60))
    assert (status, body) == (200, b"for your eyes")
    upload = store.presigned_url("files/uploaded.csv", method="PUT", expires=60)
    status, _ = http(upload, data=b"a,b\n1,2\n", headers=put_headers)
    assert status in (200, 201)
    assert store.get("files/uploaded.csv") == b"a,b\n1,2\n"
    store.put("files/t.parquet", parquet_bytes(100))
    table = pq.read_table(io.BytesIO(http(store.presigned_url("files/t.parquet"))[1]))
    assert table.equals(sample_table(100))
    for bad in ({"expires": 0}, {"expires": 8 * 24 * 3600}, {"method": "DELETE"}):
        with pytest.raises(ConfigurationError):
            store.presigned_url("files/shared.bin", **bad)
