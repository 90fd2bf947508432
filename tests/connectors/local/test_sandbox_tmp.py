"""DuckDB's spill folder is no hole in the SQL sandbox (issue 19, item 5).

DuckDB lets SQL reach its temporary directory whatever ``allowed_directories`` says; its
default is ``.tmp`` under the working directory, so a locked sandbox still read, wrote and
listed ``<cwd>/.tmp``. Every sygnify DuckDB now spills to a private ``0700`` folder of its own.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from sygnify import CloudDataConnector
from sygnify.connectors.local import LocalConnector
from sygnify.connectors.local.duckdb import close_sandboxed_database, open_sandboxed_database
from sygnify.errors import PathEscapeError, QueryError, SygnifyError
from sygnify.io.duckdb import SPILL_PREFIX, DatasetSQL, close_sandbox, open_sandbox


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding DuckDB's default spill folder, ``.tmp``, with a file in it."""
    work = tmp_path / "work"
    (work / ".tmp").mkdir(parents=True)
    (work / ".tmp" / "x.csv").write_text("secret\nleaked\n")
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def lake(cwd: Path) -> Iterator[LocalConnector]:
    connection = CloudDataConnector().connect("local", root=str(cwd / "data"), create_root=True)
    yield connection
    connection.close()


def _probes(cwd: Path) -> dict[str, str]:
    tmp = cwd / ".tmp"
    return {
        "read": f"SELECT * FROM read_csv('{tmp}/x.csv')",
        "read as table": f"SELECT * FROM '{tmp}/x.csv'",
        "copy to": f"COPY (SELECT 1 AS a) TO '{tmp}/y.csv'",
        "glob": f"SELECT * FROM glob('{tmp}/*')",
    }


@pytest.mark.parametrize("probe", ["read", "read as table", "copy to", "glob"])
def test_local_sql_cannot_reach_the_working_directorys_tmp(
    lake: LocalConnector, cwd: Path, probe: str
) -> None:
    with pytest.raises(PathEscapeError) as caught:
        lake.query(_probes(cwd)[probe])
    assert isinstance(caught.value.__cause__, duckdb.PermissionException)
    assert not (cwd / ".tmp" / "y.csv").exists()


def _spill_folder(database: duckdb.DuckDBPyConnection) -> Path:
    return Path(database.sql("SELECT current_setting('temp_directory')").fetchall()[0][0])


def test_local_database_spills_to_a_private_folder(tmp_path: Path) -> None:
    database = open_sandboxed_database(tmp_path, threads=1, memory_limit=None)
    spill = _spill_folder(database)
    assert spill.name.startswith(SPILL_PREFIX)
    assert not spill.is_relative_to(Path.cwd())
    assert not spill.exists()  # made by DuckDB when a query first spills
    parent = spill.parent.lstat()  # no other user may enter the folder it is made in
    assert stat.S_ISDIR(parent.st_mode)
    assert parent.st_uid == os.getuid()
    assert stat.S_IMODE(parent.st_mode) == 0o700
    spill.mkdir()  # as DuckDB does when it spills
    close_sandboxed_database(database)
    assert not spill.exists()
    close_sandboxed_database(database)  # idempotent


def test_a_root_other_users_may_enter_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    (tmp_path / f"sygnify-{os.getuid()}").mkdir(mode=0o777)
    (tmp_path / f"sygnify-{os.getuid()}").chmod(0o777)
    database = open_sandbox()
    spill = _spill_folder(database)
    assert spill.parent == tmp_path  # a folder of its own instead, made private at once
    assert stat.S_IMODE(spill.stat().st_mode) == 0o700
    close_sandbox(database)
    assert not spill.exists()


def test_spilling_still_works_and_stays_private(cwd: Path) -> None:
    # 400,000 sorted rows of md5 text need about 40 MB: with 32 MB DuckDB must spill.
    lake = CloudDataConnector().connect(
        "local", root=str(cwd / "data"), create_root=True, memory_limit="32MB", threads=1
    )
    try:
        spill = Path(lake.query("SELECT current_setting('temp_directory') AS d").column("d")[0].as_py())
        batches = iter(lake.stream("SELECT i, md5(i::varchar) AS h FROM range(400000) t(i) ORDER BY h"))
        rows = len(next(batches))
        assert any(spill.iterdir()), "the sort did not spill; the test proves nothing"
        rows += sum(len(batch) for batch in batches)
        assert rows == 400_000
        assert sorted(os.listdir(cwd / ".tmp")) == ["x.csv"]
    finally:
        lake.close()


def test_a_failed_setup_leaves_no_spill_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    (tmp_path / f"sygnify-{os.getuid()}").mkdir(mode=0o755)  # not private: folders of their own
    with pytest.raises(duckdb.Error):
        open_sandbox(memory_limit="not a size")
    assert not any(tmp_path.rglob(f"{SPILL_PREFIX}*"))


# -- object stores (S3, Azure Blob): DatasetSQL, the same sandbox without allowed directories ------


@pytest.fixture
def dataset_sql() -> Iterator[DatasetSQL]:
    sql = DatasetSQL({"t": "t/"}, lambda source: ds.dataset(pa.table({"x": [1, 2, 3]})))
    yield sql
    sql.close()


@pytest.mark.parametrize("probe", ["read", "read as table", "copy to", "glob"])
def test_object_store_sql_cannot_reach_the_working_directorys_tmp(
    dataset_sql: DatasetSQL, cwd: Path, probe: str
) -> None:
    with pytest.raises(QueryError, match="cannot read files or URLs") as caught:
        dataset_sql.query(_probes(cwd)[probe])
    assert isinstance(caught.value.__cause__, duckdb.PermissionException)
    assert not (cwd / ".tmp" / "y.csv").exists()
    assert dataset_sql.query("SELECT sum(x) AS s FROM t").to_pylist() == [{"s": 6}]


def test_object_store_sql_removes_its_spill_folder_on_close() -> None:
    sql = DatasetSQL({"t": "t/"}, lambda source: ds.dataset(pa.table({"x": [1]})))
    spill = Path(sql.query("SELECT current_setting('temp_directory') AS d").column("d")[0].as_py())
    assert spill.name.startswith(SPILL_PREFIX)
    spill.mkdir()  # as DuckDB does when it spills
    sql.close()
    assert not spill.exists()


def test_an_unclosed_sandbox_loses_its_folder_when_collected() -> None:
    database = open_sandbox()
    spill = _spill_folder(database)
    spill.mkdir()
    database.close()
    del database
    assert not spill.exists()


def test_symlinks_out_of_root_are_refused_and_links_inside_read(lake: LocalConnector, cwd: Path) -> None:
    # docs/connectors/local.md, "Safety": DuckDB resolves symlinks against allowed_directories.
    root = cwd / "data"
    outside = cwd / "outside"
    outside.mkdir()
    (outside / "s.csv").write_text("a\n1\n")
    (root / "in.csv").write_text("a\n2\n")
    (root / "file_link.csv").symlink_to(outside / "s.csv")
    (root / "dir_link").symlink_to(outside, target_is_directory=True)
    (root / "inner_link.csv").symlink_to(root / "in.csv")
    for sql in (
        f"SELECT * FROM read_csv('{root}/file_link.csv')",
        f"SELECT * FROM read_csv('{root}/dir_link/s.csv')",
        f"SELECT * FROM glob('{root}/dir_link/*')",
        f"COPY (SELECT 1 AS a) TO '{root}/dir_link/w.csv'",
    ):
        with pytest.raises(PathEscapeError):
            lake.query(sql)
    assert sorted(os.listdir(outside)) == ["s.csv"]
    assert lake.query(f"SELECT * FROM read_csv('{root}/inner_link.csv')").to_pylist() == [{"a": 2}]


def test_sql_cannot_move_the_spill_folder_back(lake: LocalConnector, cwd: Path) -> None:
    before = lake.query("SELECT current_setting('temp_directory') AS d").column("d")[0].as_py()
    for sql in (f"SET temp_directory='{cwd}/.tmp'", "RESET temp_directory", "SET lock_configuration=false"):
        with pytest.raises(SygnifyError):
            lake.query(sql)
    assert lake.query("SELECT current_setting('temp_directory') AS d").column("d")[0].as_py() == before
