"""Seeded structural generators of hostile input files, with their true row counts.

Every generator takes a :class:`random.Random` and returns a :class:`Case`: the files to
write under a fresh root, the source the readers are given (a file or a folder) and, where
the generator knows it, the true number of rows. ``rows=None`` means the input has no single
right answer (a bit-flipped Parquet file, a top-level ``null`` JSON line): the readers must
then only not crash, hang or raise untyped errors, and agree with each other.

:func:`generate` is deterministic: case ``i`` of ``seed`` is always the same bytes, so a
failure is reproduced by ``python -m tests.fuzz --seed SEED --case I``.

>>> a, b = generate(7, 3), generate(7, 3)
>>> [c.name for c in a] == [c.name for c in b] and a[2].files == b[2].files
True
>>> regression_cases()[0].name
'jsonl-null-line'
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

__all__ = ["GENERATORS", "Case", "case_at", "generate", "regression_cases"]


@dataclass(frozen=True)
class Case:
    """One input: ``files`` (path under the root -> bytes) read as ``source``."""

    name: str
    files: dict[str, bytes]
    source: str
    rows: int | None
    #: Operations to run; empty means all of them (see ``worker.OPERATIONS``).
    ops: tuple[str, ...] = ()
    seed: int | None = None
    index: int | None = None
    note: str = field(default="", compare=False)

    def size(self) -> int:
        return sum(len(b) for b in self.files.values())


Generator = Callable[[random.Random], Case]

# ---------------------------------------------------------------------------- values

_WORDS = ["alpha", "beta", "gamma", "delta", "x", "", "naïve", "日本", "a b", "zz"]


def _word(rng: random.Random) -> str:
    return rng.choice(_WORDS) + str(rng.randrange(1000))


def _column_types(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(["int", "float", "str", "bool", "date"]) for _ in range(n)]


def _value(rng: random.Random, kind: str) -> Any:
    if kind == "int":
        return rng.randrange(-(10**6), 10**6)
    if kind == "float":
        return round(rng.uniform(-1e4, 1e4), 3)
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "date":
        return f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
    return _word(rng)


def _csv_cell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if any(ch in text for ch in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _table(rng: random.Random, rows: int, ncols: int | None = None) -> pa.Table:
    """A random Arrow table: flat columns and, sometimes, a list, a struct, a dictionary."""
    ncols = ncols or rng.randrange(1, 6)
    columns: dict[str, pa.Array] = {}
    for i, kind in enumerate(_column_types(rng, ncols)):
        values = [None if rng.random() < 0.1 else _value(rng, kind) for _ in range(rows)]
        typ = {"int": pa.int64(), "float": pa.float64(), "str": pa.string(), "bool": pa.bool_()}.get(kind)
        columns[f"c{i}"] = pa.array(values, type=typ or pa.string())
    extra = rng.random()
    if extra < 0.2:
        columns["lst"] = pa.array([[rng.randrange(9) for _ in range(rng.randrange(3))] for _ in range(rows)])
    elif extra < 0.35:
        columns["st"] = pa.array([{"x": rng.randrange(9), "y": _word(rng)} for _ in range(rows)])
    elif extra < 0.5:
        columns["dict"] = pa.array([rng.choice(["a", "b", "c"]) for _ in range(rows)]).dictionary_encode()
    elif extra < 0.6:
        columns["ts"] = pa.array([rng.randrange(2 * 10**9) * 1000 for _ in range(rows)], pa.timestamp("ms"))
    return pa.table(columns)


def _parquet(table: pa.Table, rng: random.Random) -> bytes:
    sink = io.BytesIO()
    pq.write_table(
        table,
        sink,
        row_group_size=max(1, rng.choice([table.num_rows or 1, 7, 50])),
        compression=rng.choice(["none", "snappy", "zstd"]),
        use_dictionary=rng.random() < 0.5,
        data_page_version=rng.choice(["1.0", "2.0"]),
    )
    return sink.getvalue()


def _ipc_options(rng: random.Random | None) -> ipc.IpcWriteOptions:
    return ipc.IpcWriteOptions(compression=rng.choice([None, None, "lz4", "zstd"]) if rng else None)


def _ipc_file(table: pa.Table, rng: random.Random | None = None) -> bytes:
    sink = io.BytesIO()
    with ipc.new_file(sink, table.schema, options=_ipc_options(rng)) as writer:
        writer.write_table(table, max_chunksize=max(1, table.num_rows // 3 or 1))
    return sink.getvalue()


def _ipc_stream(table: pa.Table, rng: random.Random | None = None) -> bytes:
    sink = io.BytesIO()
    with ipc.new_stream(sink, table.schema, options=_ipc_options(rng)) as writer:
        writer.write_table(table, max_chunksize=max(1, table.num_rows // 3 or 1))
    return sink.getvalue()


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(1, max(2, len(data)))]


def _bitflip(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randrange(1, 9)):
        pos = rng.randrange(len(out))
        out[pos] ^= 1 << rng.randrange(8)
    return bytes(out)


# ---------------------------------------------------------------------------- CSV


def _csv_rows(rng: random.Random, nrows: int, ncols: int) -> tuple[list[str], list[list[str]]]:
    kinds = _column_types(rng, ncols)
    header = [f"c{i}" for i in range(ncols)]
    body = [[_csv_cell(_value(rng, k)) for k in kinds] for _ in range(nrows)]
    return header, body


def _csv_bytes(header: list[str], body: list[list[str]], newline: str = "\n") -> bytes:
    lines = [",".join(header)] + [",".join(r) for r in body]
    return (newline.join(lines) + newline).encode()


def _csv_case(name: str, data: bytes, rows: int | None, note: str = "") -> Case:
    return Case(name, {"data.csv": data}, "data.csv", rows, note=note)


def csv_valid(rng: random.Random) -> Case:
    n = rng.randrange(0, 40)
    header, body = _csv_rows(rng, n, rng.randrange(1, 6))
    return _csv_case("csv-valid", _csv_bytes(header, body), n)


def csv_bad_values(rng: random.Random) -> Case:
    n = rng.randrange(5, 40)
    ncols = rng.randrange(2, 5)
    header = [f"c{i}" for i in range(ncols)]
    body = [[str(rng.randrange(100)) for _ in range(ncols)] for _ in range(n)]
    # Integers early, garbage late: a reader that infers from the first block meets it later.
    for _ in range(rng.randrange(1, 4)):
        row = rng.randrange(n // 2, n)
        body[row][rng.randrange(ncols)] = rng.choice(
            ["abc", "1e999", "NaN", "--1", "0x1F", "1,5", "∞", " 7 "]
        )
        body[row] = [c if "," not in c else f'"{c}"' for c in body[row]]
    return _csv_case("csv-bad-values", _csv_bytes(header, body), n)


def csv_invalid_utf8(rng: random.Random) -> Case:
    n = rng.randrange(2, 30)
    lines = [b"id,name"]
    for i in range(n):
        junk = rng.choice(
            [b"\xff\xfe", b"\xc3(", b"\xed\xa0\x80", b"\x80abc", b"ok\xe2\x82", b"\xf8\x88\x80\x80\x80"]
        )
        name = junk if rng.random() < 0.4 else b"plain"
        lines.append(str(i).encode() + b"," + name)
    return _csv_case("csv-invalid-utf8", b"\n".join(lines) + b"\n", n)


def csv_blank_lines(rng: random.Random) -> Case:
    n = rng.randrange(1, 20)
    header, body = _csv_rows(rng, n, rng.randrange(2, 5))
    lines = [",".join(header)]
    for row in body:
        lines.extend([""] * rng.choice([0, 0, 1, 3, 50]))
        lines.append(",".join(row))
    lines.extend([""] * rng.choice([0, 1, 5]))
    return _csv_case("csv-blank-lines", ("\n".join(lines) + "\n").encode(), n)


def csv_ragged(rng: random.Random) -> Case:
    n = rng.randrange(3, 30)
    ncols = rng.randrange(3, 6)
    header, body = _csv_rows(rng, n, ncols)
    for _ in range(rng.randrange(1, 4)):
        row = rng.randrange(n)
        body[row] = body[row][: rng.randrange(1, ncols)]
    return _csv_case("csv-ragged", _csv_bytes(header, body), n, "rows with fewer fields")


def csv_extra_fields(rng: random.Random) -> Case:
    n = rng.randrange(3, 30)
    ncols = rng.randrange(1, 5)
    header, body = _csv_rows(rng, n, ncols)
    for _ in range(rng.randrange(1, 4)):
        row = rng.randrange(n)
        body[row] = body[row] + [str(rng.randrange(9)) for _ in range(rng.randrange(1, 4))]
    return _csv_case("csv-extra-fields", _csv_bytes(header, body), n, "rows with more fields")


def csv_quotes(rng: random.Random) -> Case:
    n = rng.randrange(2, 20)
    body = []
    for i in range(n):
        text = rng.choice(["a,b", 'say "hi"', "two\nlines", "cr\r\nlf", '""', ",", " lead", "x"])
        body.append(f'{i},"{text.replace(chr(34), chr(34) * 2)}"')
    if rng.random() < 0.3:
        body[rng.randrange(n)] += ',"unterminated'  # no right count once a quote is open
        return _csv_case("csv-quotes-unbalanced", ("id,text\n" + "\n".join(body) + "\n").encode(), None)
    return _csv_case("csv-quotes", ("id,text\n" + "\n".join(body) + "\n").encode(), n)


def csv_huge_field(rng: random.Random) -> Case:
    n = rng.randrange(1, 5)
    big = rng.randrange(64_000, 400_000)
    body = [f"{i},{'x' * (big if i == n - 1 else 3)}" for i in range(n)]
    return _csv_case("csv-huge-field", ("id,blob\n" + "\n".join(body) + "\n").encode(), n)


def csv_bom(rng: random.Random) -> Case:
    n = rng.randrange(1, 20)
    header, body = _csv_rows(rng, n, rng.randrange(1, 4))
    return _csv_case("csv-bom", b"\xef\xbb\xbf" + _csv_bytes(header, body), n)


def csv_crlf(rng: random.Random) -> Case:
    n = rng.randrange(1, 30)
    header, body = _csv_rows(rng, n, rng.randrange(1, 5))
    data = _csv_bytes(header, body, rng.choice(["\r\n", "\r\n", "\r"]))  # bare CR: old Mac files
    if rng.random() < 0.5:  # mixed endings, and a last line without one
        data = data.replace(b"\r\n", b"\n", rng.randrange(1, n + 1)).rstrip(b"\r\n")
    return _csv_case("csv-crlf", data, n)


def csv_many_columns(rng: random.Random) -> Case:
    ncols = rng.randrange(100, 600)
    n = rng.randrange(1, 4)
    header = [f"c{i}" for i in range(ncols)]
    body = [[str(rng.randrange(100)) for _ in range(ncols)] for _ in range(n)]
    return _csv_case("csv-many-columns", _csv_bytes(header, body), n)


def csv_header_only(rng: random.Random) -> Case:
    header = ",".join(f"c{i}" for i in range(rng.randrange(1, 5)))
    return _csv_case("csv-header-only", (header + rng.choice(["", "\n", "\r\n"])).encode(), 0)


def csv_empty(rng: random.Random) -> Case:
    if rng.random() < 0.7:
        return _csv_case("csv-empty", b"", 0)
    return _csv_case("csv-blank-only", b"\n" * rng.randrange(1, 5), None)  # no header: no right count


def csv_odd_header(rng: random.Random) -> Case:
    """Duplicate, empty, quoted and NUL-bearing column names; a NUL byte inside a value."""
    names = rng.sample(["a", "a", "", '"q,1"', '"multi\nline"', "a\x00b", "ü", "x" * 5000, "1"], 3)
    n = rng.randrange(1, 10)
    body = [",".join(str(rng.randrange(9)) for _ in names) for _ in range(n)]
    if rng.random() < 0.3:
        body[0] = "1\x002," + body[0].split(",", 1)[1]
    return _csv_case("csv-odd-header", (",".join(names) + "\n" + "\n".join(body) + "\n").encode(), n)


def csv_truncated(rng: random.Random) -> Case:
    """A valid file cut anywhere: the last row may be partial (no right count)."""
    header, body = _csv_rows(rng, rng.randrange(1, 30), rng.randrange(1, 5))
    return _csv_case("csv-truncated", _truncate(_csv_bytes(header, body), rng), None)


def csv_garbage(rng: random.Random) -> Case:
    return _csv_case("csv-garbage", rng.randbytes(rng.randrange(1, 4000)), None)


# ---------------------------------------------------------------------------- JSON lines


def _jsonl_case(name: str, data: bytes, rows: int | None, note: str = "", ext: str = "jsonl") -> Case:
    return Case(name, {f"data.{ext}": data}, f"data.{ext}", rows, note=note)


def _records(rng: random.Random, n: int) -> list[dict[str, Any]]:
    kinds = _column_types(rng, rng.randrange(1, 5))
    return [{f"k{i}": _value(rng, k) for i, k in enumerate(kinds)} for _ in range(n)]


def jsonl_valid(rng: random.Random) -> Case:
    n = rng.randrange(0, 40)
    lines = [json.dumps(r, ensure_ascii=rng.random() < 0.5) for r in _records(rng, n)]
    ext = rng.choice(["jsonl", "ndjson", "json"])
    return _jsonl_case("jsonl-valid", "".join(line + "\n" for line in lines).encode(), n, ext=ext)


def jsonl_top_level(rng: random.Random) -> Case:
    lines = [json.dumps(r) for r in _records(rng, rng.randrange(0, 5))]
    for _ in range(rng.randrange(1, 4)):
        lines.insert(
            rng.randrange(len(lines) + 1), rng.choice(["null", "1", '"x"', "[1, 2]", "true", "[]", "{}"])
        )
    return _jsonl_case("jsonl-top-level", ("\n".join(lines) + "\n").encode(), None, "scalars/arrays/null")


def _nested(kind: str, depth: int) -> str:
    if kind == "array":
        return "[" * depth + "1" + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def jsonl_deep_nesting(rng: random.Random) -> Case:
    depth = rng.choice([10, 64, 100, 500, 1000, 5000])
    kind = rng.choice(["array", "object"])
    inner = _nested(kind, depth)
    line = inner if kind == "object" else '{"v":' + inner + "}"
    return _jsonl_case("jsonl-deep-nesting", (line + "\n").encode(), 1, f"{kind} depth {depth}")


def jsonl_long_line(rng: random.Random) -> Case:
    n = rng.randrange(1, 4)
    lines = [json.dumps({"id": i, "s": "y" * rng.randrange(10, 300_000)}) for i in range(n)]
    return _jsonl_case("jsonl-long-line", ("\n".join(lines) + "\n").encode(), n)


def jsonl_invalid_utf8(rng: random.Random) -> Case:
    n = rng.randrange(1, 20)
    lines = []
    for i in range(n):
        junk = rng.choice([b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\x80", b"ok"])
        lines.append(b'{"id": ' + str(i).encode() + b', "s": "' + junk + b'"}')
    return _jsonl_case("jsonl-invalid-utf8", b"\n".join(lines) + b"\n", n)


def jsonl_schema_drift(rng: random.Random) -> Case:
    n = rng.randrange(2, 30)
    variants = [{"a": 1}, {"a": "x"}, {"b": 2}, {"a": [1]}, {"a": {"z": 1}}, {"a": None}, {"a": 1.5}, {}]
    lines = [json.dumps({"a": i}) for i in range(n)]
    for _ in range(rng.randrange(1, 4)):
        lines[rng.randrange(1, n)] = json.dumps(rng.choice(variants))
    return _jsonl_case(
        "jsonl-schema-drift", ("\n".join(lines) + "\n").encode(), n, "types/keys change per line"
    )


def jsonl_truncated(rng: random.Random) -> Case:
    lines = [json.dumps(r) for r in _records(rng, rng.randrange(1, 20))]
    data = ("\n".join(lines) + "\n").encode()
    return _jsonl_case("jsonl-truncated", _truncate(data, rng), None)


def jsonl_blank_lines(rng: random.Random) -> Case:
    n = rng.randrange(1, 20)
    lines: list[str] = []
    for r in _records(rng, n):
        lines.extend([""] * rng.choice([0, 1, 5]))
        lines.append(json.dumps(r))
    return _jsonl_case("jsonl-blank-lines", ("\n".join(lines) + "\n").encode(), n)


def jsonl_empty(rng: random.Random) -> Case:
    return _jsonl_case("jsonl-empty", b"" if rng.random() < 0.7 else b"\n" * rng.randrange(1, 5), 0)


def jsonl_odd_values(rng: random.Random) -> Case:
    """Huge numbers, duplicate keys, NaN literals, escapes, long keys: one record per line."""
    odd = [
        '{"a": 1e400}',
        '{"a": 123456789012345678901234567890}',
        '{"a": -0.0}',
        '{"a": 1, "a": 2}',
        '{"a": NaN}',
        '{"a": "\\ud800"}',
        '{"a": "\\u0000x"}',
        '{"' + "k" * 3000 + '": 1}',
        '{"a": 1}  ',
        ' {"a": 2}',
        '{"a": 1}\r',
    ]
    lines = ['{"a": 1}'] + [rng.choice(odd) for _ in range(rng.randrange(1, 6))]
    ext = rng.choice(["jsonl", "ndjson", "json"])
    return _jsonl_case("jsonl-odd-values", ("\n".join(lines) + "\n").encode(), len(lines), ext=ext)


def jsonl_array_document(rng: random.Random) -> Case:
    """A plain JSON document (an array of records) where JSON lines are expected: no right count."""
    records = _records(rng, rng.randrange(0, 10))
    text = json.dumps(records, indent=rng.choice([None, 2]))
    return _jsonl_case("json-array-document", text.encode(), None, ext=rng.choice(["json", "jsonl"]))


def jsonl_garbage(rng: random.Random) -> Case:
    data = rng.choice(
        [rng.randbytes(rng.randrange(1, 2000)), b'{"a": 1}\n{"a": \n', b"{]\n", b'{"a":1}{"a":2}\n']
    )
    return _jsonl_case("jsonl-garbage", data, None)


# ---------------------------------------------------------------------------- Parquet / IPC


def parquet_valid(rng: random.Random) -> Case:
    table = _table(rng, rng.randrange(0, 120))
    return Case("parquet-valid", {"data.parquet": _parquet(table, rng)}, "data.parquet", table.num_rows)


def parquet_truncated(rng: random.Random) -> Case:
    data = _truncate(_parquet(_table(rng, rng.randrange(1, 80)), rng), rng)
    return Case("parquet-truncated", {"data.parquet": data}, "data.parquet", None)


def parquet_bitflip(rng: random.Random) -> Case:
    data = _bitflip(_parquet(_table(rng, rng.randrange(1, 80)), rng), rng)
    return Case("parquet-bitflip", {"data.parquet": data}, "data.parquet", None)


def parquet_zero_byte(rng: random.Random) -> Case:
    return Case("parquet-zero-byte", {"data.parquet": b""}, "data.parquet", None)


def _ipc_case(name: str, data: bytes, rows: int | None, ext: str) -> Case:
    return Case(name, {f"data.{ext}": data}, f"data.{ext}", rows)


def arrow_file_valid(rng: random.Random) -> Case:
    table = _table(rng, rng.randrange(0, 120))
    return _ipc_case(
        "arrow-file-valid", _ipc_file(table, rng), table.num_rows, rng.choice(["arrow", "feather", "ipc"])
    )


def arrow_file_truncated(rng: random.Random) -> Case:
    data = _truncate(_ipc_file(_table(rng, rng.randrange(1, 80)), rng), rng)
    return _ipc_case("arrow-file-truncated", data, None, "arrow")


def arrow_file_bitflip(rng: random.Random) -> Case:
    data = _bitflip(_ipc_file(_table(rng, rng.randrange(1, 80)), rng), rng)
    return _ipc_case("arrow-file-bitflip", data, None, "arrow")


def arrow_zero_byte(rng: random.Random) -> Case:
    return _ipc_case("arrow-zero-byte", b"", None, rng.choice(["arrow", "ipc", "feather"]))


def arrow_stream_valid(rng: random.Random) -> Case:
    table = _table(rng, rng.randrange(0, 120))
    return _ipc_case(
        "arrow-stream-valid", _ipc_stream(table, rng), table.num_rows, rng.choice(["arrow", "ipc"])
    )


def arrow_stream_truncated(rng: random.Random) -> Case:
    data = _truncate(_ipc_stream(_table(rng, rng.randrange(1, 80)), rng), rng)
    return _ipc_case("arrow-stream-truncated", data, None, "ipc")


def arrow_stream_bitflip(rng: random.Random) -> Case:
    data = _bitflip(_ipc_stream(_table(rng, rng.randrange(1, 80)), rng), rng)
    return _ipc_case("arrow-stream-bitflip", data, None, "ipc")


# ---------------------------------------------------------------------------- folders


def _drifted(rng: random.Random, table: pa.Table) -> pa.Table:
    """``table`` with a column added, removed or retyped."""
    change = rng.choice(["add", "drop", "retype"])
    if change == "add" or table.num_columns == 1:
        return table.append_column("extra", pa.array([rng.randrange(9) for _ in range(table.num_rows)]))
    if change == "drop":
        return table.drop_columns([table.column_names[-1]])
    name = table.column_names[0]
    retyped = pa.array([str(v) for v in table.column(0).to_pylist()], pa.string())
    if pa.types.is_string(table.column(0).type):
        retyped = pa.array([float(len(str(v))) for v in table.column(0).to_pylist()])
    return table.set_column(0, name, retyped)


def _encode(fmt: str, table: pa.Table, rng: random.Random) -> bytes:
    if fmt == "parquet":
        return _parquet(table, rng)
    if fmt == "arrow":
        return _ipc_file(table, rng)
    flat = table.select([n for n in table.column_names if n not in ("lst", "st", "dict", "ts")] or [0])
    rows = flat.to_pylist()
    if fmt == "jsonl":
        return "".join(json.dumps(r) + "\n" for r in rows).encode()
    header = flat.column_names
    # A row of one null would be a blank line, which is no row: write it as an empty string.
    lines = [",".join(header)] + [
        ",".join("" if r[h] is None else _csv_cell(r[h]) for h in header) or '""' for r in rows
    ]
    return ("\n".join(lines) + "\n").encode()


def folder(rng: random.Random, drift: bool) -> Case:
    fmt = rng.choice(["parquet", "arrow", "csv", "jsonl"])
    base = _table(rng, rng.randrange(1, 40))
    files, total = {}, 0
    nfiles = rng.randrange(2, 5)
    drift_at = rng.randrange(1, nfiles) if drift else -1
    for i in range(nfiles):
        table = base.slice(rng.randrange(0, 10), rng.randrange(0, 30))
        if i == drift_at:
            table = _drifted(rng, table)
        files[f"ds/part-{i}.{fmt}"] = _encode(fmt, table, rng)
        total += table.num_rows
    if rng.random() < 0.5:  # never read: hidden names and extensions that name no format
        junk = rng.randbytes(rng.randrange(1, 200))
        files[
            rng.choice([f"ds/.hidden.{fmt}", "ds/_SUCCESS", f"ds/_tmp.{fmt}", "ds/README.txt", "ds/x.crc"])
        ] = junk
    name = f"folder-{fmt}-{'drift' if drift else 'valid'}"
    return Case(name, files, "ds/", total, note=f"drift in file {drift_at}" if drift else "")


def folder_valid(rng: random.Random) -> Case:
    return folder(rng, drift=False)


def folder_drift(rng: random.Random) -> Case:
    return folder(rng, drift=True)


def folder_with_empty_file(rng: random.Random) -> Case:
    fmt = rng.choice(["parquet", "arrow", "csv", "jsonl"])
    table = _table(rng, rng.randrange(1, 20))
    files = {f"ds/part-0.{fmt}": _encode(fmt, table, rng), f"ds/part-1.{fmt}": b""}
    rows = table.num_rows if fmt in ("csv", "jsonl") else None
    return Case(f"folder-{fmt}-empty-file", files, "ds/", rows)


def folder_hive(rng: random.Random) -> Case:
    """``key=value`` directories, with values that need escaping or look like numbers."""
    fmt = rng.choice(["parquet", "csv", "jsonl", "arrow"])
    base = _table(rng, rng.randrange(1, 20))
    values = rng.sample(
        ["1", "007", "a b", "%20", "x%3Dy", "__HIVE_DEFAULT_PARTITION__", "", "ü", "-1", "1e3"], 3
    )
    files, total = {}, 0
    for i, value in enumerate(values):
        table = base.slice(0, rng.randrange(0, 20))
        files[f"ds/k={value}/part-{i}.{fmt}"] = _encode(fmt, table, rng)
        total += table.num_rows
    return Case(f"folder-{fmt}-hive", files, "ds/", total, note=f"k in {values}")


def folder_mixed_formats(rng: random.Random) -> Case:
    """Files of two formats in one folder: no right count (one schema or a typed error)."""
    fmts = rng.sample(["parquet", "csv", "jsonl", "arrow"], 2)
    table = _table(rng, rng.randrange(1, 20))
    files = {f"ds/part-{i}.{fmt}": _encode(fmt, table, rng) for i, fmt in enumerate(fmts)}
    return Case(f"folder-mixed-{'-'.join(fmts)}", files, "ds/", None)


GENERATORS: dict[str, Generator] = {
    f.__name__.replace("_", "-"): f
    for f in (
        csv_valid,
        csv_bad_values,
        csv_invalid_utf8,
        csv_blank_lines,
        csv_ragged,
        csv_extra_fields,
        csv_quotes,
        csv_huge_field,
        csv_bom,
        csv_crlf,
        csv_many_columns,
        csv_header_only,
        csv_empty,
        csv_odd_header,
        csv_truncated,
        csv_garbage,
        jsonl_valid,
        jsonl_top_level,
        jsonl_deep_nesting,
        jsonl_long_line,
        jsonl_invalid_utf8,
        jsonl_schema_drift,
        jsonl_truncated,
        jsonl_blank_lines,
        jsonl_empty,
        jsonl_odd_values,
        jsonl_array_document,
        jsonl_garbage,
        parquet_valid,
        parquet_truncated,
        parquet_bitflip,
        parquet_zero_byte,
        arrow_file_valid,
        arrow_file_truncated,
        arrow_file_bitflip,
        arrow_zero_byte,
        arrow_stream_valid,
        arrow_stream_truncated,
        arrow_stream_bitflip,
        folder_valid,
        folder_drift,
        folder_with_empty_file,
        folder_hive,
        folder_mixed_formats,
    )
}


def case_at(seed: int, index: int) -> Case:
    """Case ``index`` of the run seeded ``seed``: generators in turn, each with its own stream."""
    names = list(GENERATORS)
    name = names[index % len(names)]
    rng = random.Random(seed * 1_000_003 + index)
    case = GENERATORS[name](rng)
    return Case(f"{case.name}#{index}", case.files, case.source, case.rows, case.ops, seed, index, case.note)


def generate(seed: int, count: int) -> list[Case]:
    """The first ``count`` cases of ``seed`` (every generator once per ``len(GENERATORS)``)."""
    return [case_at(seed, i) for i in range(count)]


def iter_corpus(seed: int, count: int) -> Iterator[tuple[str, bytes]]:
    """(file name, bytes) of single files, to seed the coverage-guided fuzzers."""
    for case in generate(seed, count):
        for path, data in case.files.items():
            yield f"{case.index:04d}-{path.replace('/', '_')}", data


# ---------------------------------------------------------------------------- regression corpus


#: Inputs the coverage-guided fuzzers found, kept as regression cases (no known row count).
CORPUS = Path(__file__).with_name("corpus")


def regression_cases() -> list[Case]:
    """The inputs named in issue 19, each a fixed case, then the files of ``corpus/``."""
    valid = pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    flipped = bytearray(_ipc_file(valid))
    flipped[len(flipped) // 2] ^= 0xFF  # a byte in the record batch's metadata/body
    # Bytes that decode to invalid batches (pyarrow 26): a null count over the length, bad UTF-8.
    null_count, utf8 = bytearray(_ipc_file(valid)), bytearray(_ipc_file(valid))
    null_count[368] ^= 0xFF
    utf8[424] ^= 0xFF
    wide = ",".join(f"c{i}" for i in range(2000)) + "\n" + ",".join("1" for _ in range(2000)) + "\n"
    # The 2,000-column file is slow (issue item 10): only the readers it is about.
    wide_ops = ("stream", "scan", "query", "process:chunked:raise")
    return [
        _jsonl_case("jsonl-null-line", b"null\n", None),
        _jsonl_case("jsonl-array-1000-deep", ('{"v":' + _nested("array", 1000) + "}\n").encode(), 1),
        _jsonl_case("jsonl-bare-array-1000-deep", (_nested("array", 1000) + "\n").encode(), None),
        _jsonl_case("jsonl-object-6kb-line", (_nested("object", 1000) + "\n").encode(), 1),
        _jsonl_case("jsonl-object-100000-deep", (_nested("object", 100_000) + "\n").encode(), 1),
        _csv_case("csv-header-50-blank-lines", b"a,b,c\n" + b"\n" * 50 + b"1,a,1.0\n", 1),
        _ipc_case("arrow-file-bitflip-fixed", bytes(flipped), None, "arrow"),
        _ipc_case("arrow-file-null-count-flip", bytes(null_count), None, "arrow"),
        _ipc_case("arrow-file-utf8-flip", bytes(utf8), None, "arrow"),
        Case("parquet-zero-byte-fixed", {"data.parquet": b""}, "data.parquet", None),
        _ipc_case("arrow-zero-byte-fixed", b"", None, "arrow"),
        _ipc_case("arrow-file-valid-fixed", _ipc_file(valid), 3, "arrow"),
        Case("csv-2000-columns-1-row", {"data.csv": wide.encode()}, "data.csv", 1, ops=wide_ops),
        _csv_case("csv-invalid-utf8-fixed", b"id,name\n1,ok\n2,\xff\xfe\n3,\xc3(\n", 3),
        _csv_case("csv-extra-fields-fixed", b"a,b\n1,2\n3,4,5\n6,7\n", 3),
        _csv_case("csv-nul-in-header", b"a\x00b,c\n1,2\n", 1),
        _csv_case("csv-bare-cr-line-ends", b"a,b\r1,x\r2,y\r", 2),
        _jsonl_case("jsonl-int-over-int64", b'{"a": 1}\n{"a": 123456789012345678901234567890}\n', 2),
        _jsonl_case("jsonl-invalid-utf8-fixed", b'{"s": "\xff"}\n', 1),
    ] + [
        Case(f"corpus-{path.name}", {path.name: path.read_bytes()}, path.name, None)
        for path in sorted(CORPUS.glob("*"))
        if not path.name.startswith(".")
    ]
