"""Bulk loads into Snowflake (Parquet ``PUT`` + ``COPY INTO``) that a retry never duplicates.

A write names its stage and its staged file once and writes the Parquet file once
(:func:`prepare_write`), before the first attempt, and every attempt stages the same bytes
under the same names. Snowflake keeps
*load metadata* per table (which staged files were loaded, with their checksums, for 64
days) and ``COPY INTO`` without ``FORCE`` skips a file it has loaded before. So when an
attempt fails ambiguously (the ``COMMIT`` went through but its answer was lost) the retry's
``COPY`` loads nothing, and the retry rolls its own transaction back: for ``overwrite`` that
undoes its ``DELETE``, which would otherwise empty the table the first attempt filled.

    >>> import pyarrow as pa, tempfile
    >>> staged = prepare_write(pa.table({"id": [1, 2]}), Path(tempfile.mkdtemp()), row_group_rows=1000)
    >>> staged.columns, staged.rows, staged.stage == f'"SYGNIFY_STAGE_{staged.load_id}"', staged.path.suffix
    ([('id', 'INTEGER')], 2, True, '.parquet')
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sygnify.connectors._sql.names import TableName, quote_identifier
from sygnify.connectors.base import WriteMode
from sygnify.connectors.snowflake.types import snowflake_type
from sygnify.errors import JobFailedError

__all__ = ["StagedWrite", "copy_into_table", "new_load_id", "prepare_write", "stage_name", "staged_file_name"]

#: COPY INTO statuses of a file whose rows went in.
_LOADED = {"LOADED", "PARTIALLY_LOADED"}


def new_load_id() -> str:
    """A fresh id for one write (upper-case hex, so unquoted and quoted spellings agree)."""
    return uuid.uuid4().hex.upper()


def stage_name(load_id: str) -> str:
    """The (quoted) temporary stage of a write."""
    return quote_identifier(f"SYGNIFY_STAGE_{load_id}")


def staged_file_name(load_id: str) -> str:
    """The name of a write's Parquet file, locally and on the stage."""
    return f"part-{load_id.lower()}.parquet"


@dataclass(frozen=True)
class StagedWrite:
    """One write, prepared once for all its attempts: its id, Parquet file, columns and rows."""

    load_id: str
    path: Path
    #: (column name, Snowflake type) of a table the write creates.
    columns: list[tuple[str, str]]
    rows: int

    @property
    def stage(self) -> str:
        """The (quoted) temporary stage every attempt of this write uses."""
        return stage_name(self.load_id)


def prepare_write(table: pa.Table, directory: Path, *, row_group_rows: int) -> StagedWrite:
    """Write ``table`` as the Parquet file of a new write into ``directory``.

    An Arrow type with no Snowflake type is a :class:`~sygnify.errors.SchemaError` here,
    before anything is sent.
    """
    columns = [(field.name, snowflake_type(field.name, field.type)) for field in table.schema]
    load_id = new_load_id()
    path = directory / staged_file_name(load_id)
    pq.write_table(table, path, row_group_size=row_group_rows)
    return StagedWrite(load_id, path, columns, table.num_rows)


def _files_loaded(rows: Sequence[Sequence[Any]]) -> tuple[int, int]:
    """(files loaded, rows loaded) from COPY INTO's result rows.

    Snowflake answers "Copy executed with 0 files processed." (one column) when every file
    was skipped; emulators may list them as LOAD_SKIPPED instead. Both count as none loaded.
    """
    loaded = [row for row in rows if len(row) > 3 and str(row[1]).upper() in _LOADED]
    return len(loaded), sum(int(row[3] or 0) for row in loaded)


def copy_into_table(cursor: Any, staged: StagedWrite, target: TableName, mode: WriteMode) -> int:
    """One attempt of a write: create the table if needed, stage the file and copy it in.

    Returns the rows the write put in the table: COPY's count, or ``staged.rows`` when an
    earlier attempt of the same write had already committed them. Example (needs Snowflake
    or fakesnow)::

        staged = prepare_write(table, directory, row_group_rows=500_000)  # once per write
        rows = copy_into_table(cursor, staged, parse_table_name("ORDERS", DIALECT), "append")
    """
    stage, path, columns, expected = staged.stage, staged.path, staged.columns, staged.rows
    definition = ", ".join(f"{quote_identifier(name)} {sf_type}" for name, sf_type in columns)
    column_list = ", ".join(quote_identifier(name) for name, _ in columns)
    # Parquet fields are addressed by name; VARIANT-typed fields (ARRAY, OBJECT) need no cast.
    selection = ", ".join(f"$1:{quote_identifier(name)}" for name, _ in columns)
    table_sql = target.sql
    location = Path(path).as_posix().replace("'", "\\'")
    cursor.execute(f"CREATE TABLE IF NOT EXISTS {table_sql} ({definition})")
    # IF NOT EXISTS: a retry on the same session finds the stage of its earlier attempt.
    cursor.execute(f"CREATE TEMPORARY STAGE IF NOT EXISTS {stage}")
    cursor.execute(f"PUT 'file://{location}' @{stage} AUTO_COMPRESS=FALSE OVERWRITE=TRUE")
    # "0 files loaded" below must mean "loaded before", never "never staged".
    if not any(str(value).upper() == "UPLOADED" for row in cursor.fetchall() for value in row):
        raise JobFailedError(
            f"PUT did not upload {Path(path).name} to stage {stage}; nothing was loaded into {target.listed}",
            resource=target.listed,
        )
    cursor.execute("BEGIN")
    try:
        if mode == "overwrite":
            cursor.execute(f"DELETE FROM {table_sql}")
        # No FORCE: COPY's load metadata skips the file if an earlier attempt loaded it.
        cursor.execute(
            f"COPY INTO {table_sql} ({column_list}) FROM (SELECT {selection} FROM @{stage}) "
            "FILE_FORMAT=(TYPE=PARQUET COMPRESSION=AUTO USE_LOGICAL_TYPE=TRUE) "
            "PURGE=TRUE ON_ERROR=ABORT_STATEMENT"
        )
        files, loaded = _files_loaded(cursor.fetchall())
        if files == 0:
            # The staged file was loaded and committed by an earlier attempt of this write;
            # this attempt must change nothing (its DELETE included).
            cursor.execute("ROLLBACK")
            loaded = expected
        else:
            cursor.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(Exception):
            cursor.execute("ROLLBACK")
        raise
    with contextlib.suppress(Exception):
        cursor.execute(f"DROP STAGE IF EXISTS {stage}")
    return loaded or expected
