"""Untrusted files never crash the process: the checks of ``sygnify.io.untrusted`` in front of
every reader (``stream``, ``scan``, ``query`` and ``LargeDataHandler.process`` in each mode).

Inputs that used to crash the interpreter (SIGSEGV in pyarrow's JSON reader, Polars aborting
on a bit-flipped IPC file) run in a subprocess, so a regression fails the test instead of
killing the test run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from sygnify import CloudDataConnector, LargeDataHandler
from sygnify.errors import DataQualityError, NotFoundError
from sygnify.io.untrusted import Limits, _exact_depths, check_ipc, check_json_lines, has_blank_lines

MODES = ["streaming", "chunked", "parallel", "incremental"]

#: Files that crashed or hung a reader, by name: (file name, content).
HOSTILE: dict[str, tuple[str, bytes]] = {
    "null line": ("d.jsonl", b"null\n"),
    "object then null": ("d.jsonl", b'{"a": 1}\nnull\n'),
    "top-level array": ("d.jsonl", b'{"a": 1}\n[1, 2]\n'),
    "deep objects": ("d.jsonl", b'{"a":' * 1000 + b"1" + b"}" * 1000 + b"\n"),
    "deep arrays": ("d.jsonl", b'{"a":' + b"[" * 1000 + b"1" + b"]" * 1000 + b"}\n"),
    "100k nested": ("d.jsonl", b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"\n"),
}

PROBE = textwrap.dedent(
    """
    import json, sys
    from sygnify import CloudDataConnector, LargeDataHandler
    from sygnify.errors import SygnifyError
    root, name, call = sys.argv[1], sys.argv[2], sys.argv[3]
    lake = CloudDataConnector().connect("local", root=root)
    try:
        if call == "stream":
            rows = sum(b.num_rows for b in lake.stream(name))
        elif call == "scan":
            rows = lake.scan(name).collect().height
        elif call == "query":
            rows = lake.query(f"SELECT count(*) AS n FROM '{name}'").column(0)[0].as_py()
        else:
            result = LargeDataHandler().process(f"{root}/{name}", transform=lambda lf: lf, mode=call)
            rows = result.rows_out
        print(json.dumps({"rows": rows}))
    except SygnifyError as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
    """
)


def _probe(root: Path, name: str, call: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(root), name, call], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"{call} of {name} died with {done.returncode}: {done.stderr[-2000:]}"
    answer: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("call", ["stream", "scan", "chunked", "streaming"])
def test_a_hostile_json_lines_file_is_a_data_quality_error_naming_the_file(
    tmp_path: Path, case: str, call: str
) -> None:
    name, content = HOSTILE[case]
    (tmp_path / name).write_bytes(content)
    answer = _probe(tmp_path, name, call)
    assert answer.get("error") == "DataQualityError", answer
    assert name in str(answer["message"])
    assert "line" in str(answer["message"])


def _flipped_ipc(path: Path) -> None:
    table = pa.table({"s": [f"value-{i}" for i in range(2_000)], "n": np.arange(2_000)})
    with ipc.new_file(path, table.schema) as out:
        out.write_table(table, max_chunksize=500)
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(7)
    for at in rng.integers(8, len(data) - 8, size=40):
        data[int(at)] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("call", ["stream", "scan", "chunked", "streaming"])
def test_a_bit_flipped_arrow_file_is_a_data_quality_error(tmp_path: Path, call: str) -> None:
    _flipped_ipc(tmp_path / "x.arrow")
    answer = _probe(tmp_path, "x.arrow", call)
    assert answer.get("error") == "DataQualityError", answer


@pytest.mark.parametrize("mode", MODES)
def test_a_valid_arrow_file_is_processed_in_every_mode(tmp_path: Path, mode: str) -> None:
    frame = pl.DataFrame({"a": list(range(1_000)), "s": [str(i) for i in range(1_000)]})
    frame.write_ipc(tmp_path / "x.arrow")
    options: dict[str, object] = {}
    if mode == "incremental":
        options = {"checkpoint": tmp_path / "ck", "sink": str(tmp_path / "out")}
    result = LargeDataHandler().process(
        str(tmp_path / "x.arrow"), transform=lambda lf: lf.filter(pl.col("a") % 2 == 0), mode=mode, **options
    )
    assert result.rows_out == 500
    output = result.output if result.output is not None else pl.read_parquet(tmp_path / "out")
    assert output.sort("a").equals(frame.filter(pl.col("a") % 2 == 0))


@pytest.mark.parametrize("mode", MODES)
def test_a_zero_byte_parquet_file_is_a_data_quality_error_naming_it(tmp_path: Path, mode: str) -> None:
    (tmp_path / "z.parquet").write_bytes(b"")
    options: dict[str, object] = {}
    if mode == "incremental":
        options = {"checkpoint": tmp_path / "ck", "sink": str(tmp_path / "out")}
    with pytest.raises(DataQualityError, match=r"z\.parquet"):
        LargeDataHandler().process(str(tmp_path / "z.parquet"), transform=lambda lf: lf, mode=mode, **options)


@pytest.mark.parametrize("call", ["stream", "scan", "query", "chunked", "streaming", "parallel"])
def test_blank_csv_lines_are_not_rows_for_any_reader(tmp_path: Path, call: str) -> None:
    (tmp_path / "b.csv").write_text("a,b,c\n" + "\n" * 50 + "1,a,1.0\n\n2,b,2.0\r\n\r\n")
    answer = _probe(tmp_path, "b.csv", call)
    if call == "query" and "error" in answer:
        # DuckDB's dialect sniffer gives up on a sample of blank lines: a typed error, not rows.
        assert answer["error"] == "DataQualityError"
        assert "sniffing" in str(answer["message"])
    else:
        assert answer == {"rows": 2}


def test_blank_lines_in_one_file_of_a_folder_keep_the_order_and_the_types(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "0.csv").write_text("a,b\n1,x\n2,y\n")
    (tmp_path / "in" / "1.csv").write_text("a,b\n\n3,z\n\n\n4,w\n")
    (tmp_path / "in" / "2.csv").write_text("a,b\n5,v\n")
    lake = CloudDataConnector().connect("local", root=str(tmp_path))
    frame = lake.scan("in/").collect()
    assert frame.to_dict(as_series=False) == {"a": [1, 2, 3, 4, 5], "b": ["x", "y", "z", "w", "v"]}
    assert frame.schema == pl.Schema({"a": pl.Int64, "b": pl.String})


def test_json_depth_ignores_brackets_inside_strings_and_escaped_quotes(tmp_path: Path) -> None:
    tricky = {"s": "[[[[{{{{" * 40, "q": 'say "[[[[" \\', "a": [[[1]]]}
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(tricky) + "\n" + json.dumps({"x": "]]]]" * 50, "y": [[1, [2]]]}) + "\n")
    check_json_lines(str(path))  # 4 levels deep at most: accepted
    line = b'{"a": "\\\\", "b": "\\"[[[", "c": [[["x]"]]]}\n'
    assert _exact_depths(np.frombuffer(line, dtype=np.uint8)).tolist() == [4]


def test_json_limits_are_exact_at_the_boundary(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"a":' + "[" * 31 + "]" * 31 + "}\n")  # 32 levels: the object and 31 arrays
    check_json_lines(str(path))
    path.write_text('{"a":' + "[" * 32 + "]" * 32 + "}\n")
    with pytest.raises(DataQualityError, match="33 levels"):
        check_json_lines(str(path))
    path.write_text('{"a": "' + "x" * 200 + '"}\n')
    with pytest.raises(DataQualityError, match="max_line_bytes"):
        check_json_lines(str(path), limits=Limits(max_line_bytes=100))


def test_invalid_utf8_in_json_lines_is_refused_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"s": "ok"}\n{"s": "\xff"}\n')
    with pytest.raises(DataQualityError, match="line 2: invalid UTF-8"):
        check_json_lines(str(path))


def test_json_lines_across_block_boundaries_are_checked_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sygnify.io.untrusted as untrusted

    monkeypatch.setattr(untrusted, "BLOCK", 64)  # every line straddles blocks
    path = tmp_path / "t.jsonl"
    lines = [json.dumps({"i": i, "v": [[i]], "s": "x" * (i % 90)}) for i in range(300)]
    path.write_text("\n".join(lines) + "\n   \n" + "\n")
    check_json_lines(str(path))
    path.write_text("\n".join(lines) + "\n" + "  7\n")
    with pytest.raises(DataQualityError, match="line 301"):
        check_json_lines(str(path))


def test_check_ipc_accepts_streams_and_refuses_truncation(tmp_path: Path) -> None:
    table = pa.table({"x": [1, 2, 3]})
    stream = tmp_path / "t.arrows"
    with ipc.new_stream(stream, table.schema) as out:
        out.write_table(table)
    check_ipc(str(stream))
    stream.write_bytes(stream.read_bytes()[:-20])
    with pytest.raises(DataQualityError):
        check_ipc(str(stream))


def test_has_blank_lines_sees_leading_and_crlf_blank_lines(tmp_path: Path) -> None:
    for text, blank in [("a\n1\n", False), ("\na\n1\n", True), ("a\r\n\r\n1\r\n", True), ("a\n1\n\n", True)]:
        path = tmp_path / f"{abs(hash(text))}.csv"
        path.write_text(text, newline="")
        assert has_blank_lines(str(path)) is blank, text


def test_collecting_a_local_scan_raises_sygnify_errors(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x,y\n1,2\n3,4\n")
    lake = CloudDataConnector().connect("local", root=str(tmp_path))
    typed = lake.scan("a.csv", schema={"x": pl.Int64, "y": pl.Int64})
    (tmp_path / "a.csv").write_text("x,y\n1,2\nbad,4\n")
    with pytest.raises(DataQualityError, match=r"a\.csv"):
        typed.collect()
    later = lake.scan("a.csv")
    (tmp_path / "a.csv").unlink()  # removed between scan() and collect(), as by an overwrite
    with pytest.raises(NotFoundError, match=r"a\.csv"):
        later.collect()


CRASHING_READER = """
import os, signal, sys
for index, path in enumerate(sys.argv[3:]):
    if "boom" in path:
        os.kill(os.getpid(), signal.SIGSEGV)
    print(f"ok {index}", flush=True)
"""


@pytest.mark.parametrize("mode", ["streaming", "chunked", "parallel"])
def test_a_reader_crash_in_the_isolated_subprocess_is_a_dead_letter_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    import sygnify.io.untrusted as untrusted

    # A reader that dies on one file, as pyarrow's did on `null` lines: only the subprocess dies.
    monkeypatch.setattr(untrusted, "_ISOLATED_READ", CRASHING_READER)
    untrusted._CHECKED.clear()
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_text('{"x": 1}\n{"x": 2}\n{"x": 3}\n')
    (folder / "boom.jsonl").write_text('{"x": 4}\n{"x": 5}\n')
    (folder / "c.jsonl").write_text('{"x": 6}\n')
    result = LargeDataHandler(progress=False).process(
        str(folder), mode=mode, on_error="dead_letter", dead_letter=str(tmp_path / "dl")
    )
    assert result.output is not None
    assert sorted(result.output["x"].to_list()) == [1, 2, 3, 6]
    letters = pl.read_parquet(tmp_path / "dl")
    assert letters.height == 1
    assert "boom.jsonl" in letters["_origin"][0]
    assert "crashed" in letters["_error"][0]
    untrusted._CHECKED.clear()
    with pytest.raises(DataQualityError, match=r"boom\.jsonl.*crashed"):
        LargeDataHandler(progress=False).process(str(folder), mode=mode, isolate=True)
    untrusted._CHECKED.clear()
