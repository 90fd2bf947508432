"""The bulk JSON path (one Arrow read per micro-batch) gives exactly what the per-message path gives.

Each batch is read twice through :meth:`BaseSource.read`: once with the default decoder (bulk,
falling back to per-message decoding for a batch it cannot decode exactly) and once with a
decoder that is ``json_decoder`` under another name (always per message). The batches, the
dead letters with their reasons and positions, and the rows' messages must be equal.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pytest

from sygnify.streams import BaseSource, RawMessage
from sygnify.streams.decoding import decode_json_batch, json_decoder


class ListSource(BaseSource):
    name = "list"

    def __init__(self, payloads: Sequence[bytes | None], **options: Any) -> None:
        super().__init__(**options)
        self.payloads = list(payloads)

    def _fetch(self, max_records: int, timeout: float) -> list[RawMessage]:
        taken, self.payloads = self.payloads[:max_records], self.payloads[max_records:]
        return [
            RawMessage(b"", {"offset": i}, error="tombstone") if p is None else RawMessage(p, {"offset": i})
            for i, p in enumerate(taken)
        ]

    def _acknowledge(self, messages: Sequence[RawMessage]) -> None:
        pass


def per_message(payload: bytes) -> Mapping[str, Any]:
    return json_decoder(payload)


def read_both(payloads: Sequence[bytes | None], schema: pa.Schema | None) -> tuple[Any, Any]:
    results: list[Any] = []
    for decoder in (json_decoder, per_message):
        letters: list[dict[str, Any]] = []
        source = ListSource(payloads, decoder=decoder, schema=schema, dead_letter=letters.extend)
        try:
            batch = source.read(max_records=len(payloads) + 1)
            assert batch is not None
            # rows map back to their messages: reject(row) names that row's offset
            rejected: list[dict[str, Any]] = []
            source.dead_letter = rejected.extend
            assert batch.reject is not None
            batch.reject(list(range(batch.batch.num_rows)), ["r"] * batch.batch.num_rows)
            results.append((batch.batch, letters, [(d["offset"], d["payload"]) for d in rejected]))
        except Exception as exc:  # both paths must fail alike, if at all
            results.append(("raised", type(exc).__name__, str(exc)))
    return results[0], results[1]


def assert_same(payloads: Sequence[bytes | None], schema: pa.Schema | None = None) -> Any:
    bulk, reference = read_both(payloads, schema)
    if reference[0] == "raised":
        assert bulk == reference
        return None
    assert bulk[0].schema == reference[0].schema, (bulk[0].schema, reference[0].schema)
    # repr: NaN equals NaN, and -0.0 differs from 0.0
    assert repr(bulk[0].to_pylist()) == repr(reference[0].to_pylist())
    assert bulk[0].num_rows == reference[0].num_rows
    assert bulk[1] == reference[1]  # dead letters: payload, reason, position, in order
    assert bulk[2] == reference[2]
    return bulk


def j(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


GOOD: list[bytes] = [
    j({"id": i, "temperature": 20.0 + i / 8, "humidity": 40 + i, "ts": i / 1000}) for i in range(50)
]
SCHEMA = pa.schema(
    [("id", pa.int64()), ("temperature", pa.float64()), ("humidity", pa.float64()), ("ts", pa.float64())]
)

SHAPES: dict[str, Sequence[bytes | None]] = {
    "flat": GOOD,
    "nested": [
        j({"a": {"b": [1, 2], "c": {"d": "x"}}, "l": [{"x": 1}, {"y": "s"}]}),
        j({"a": {"b": [], "e": None}, "l": []}),
        j({"a": None, "l": None}),
    ],
    "nulls": [j({"a": None, "b": 1}), j({"a": None, "b": None}), j({"a": 2.5, "b": 3})],
    "missing and late fields": [j({"b": 1}), j({"a": 3, "b": 4}), j({"c": "x"})],
    "empty objects": [b"{}", b"{}", j({"a": 1})],
    "unicode": [
        j({"s": "é😀 ünï"}),
        b'{"s": "\\u00e9\\ud83d\\ude00 \\n\\t\\u0000 \\"q\\" \\/"}',
        j({"s": "日本語", "k": "ключ"}),
    ],
    "big ints": [j({"a": 2**63 - 1}), j({"a": -(2**63)}), j({"a": 5})],
    "ints beyond int64": [j({"a": 2**63}), j({"a": 1})],
    "ints beyond int64 among floats": [j({"a": 2**70}), j({"a": 1.5})],
    "nested int beyond int64": [j({"a": [1.5, 2**64]}), j({"a": [1.0]})],
    "floats": [j({"a": 1}), j({"a": 1.0}), j({"a": -0.0}), j({"a": 1e300}), j({"a": 5e-324})],
    "nan and infinity": [b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}', j({"a": 1.0})],
    "float overflow": [b'{"a": 1e400}', j({"a": 1.0})],
    "bools": [j({"a": True}), j({"a": False}), j({"a": None})],
    "mixed types": [j({"a": 1}), j({"a": "x"}), j({"a": 2}), j({"a": 3})],
    "bool and int": [j({"a": True}), j({"a": 1}), j({"a": 2})],
    "iso strings": [j({"t": "2024-01-01T00:00:00"}), j({"t": "2024-01-02"}), j({"t": "12:00:00"})],
    "nested iso strings": [j({"e": {"t": "2024-01-01T00:00:00Z"}, "l": ["2024-01-01"]})],
    "malformed": [GOOD[0], b"{broken", GOOD[1], b"not json", GOOD[2]],
    "not objects": [GOOD[0], b"[1, 2]", b"5", b"null", b'"s"', GOOD[1]],
    "empty and whitespace payloads": [GOOD[0], b"", b"   ", GOOD[1]],
    "two objects in one payload": [GOOD[0], b'{"id": 1} {"id": 2}', GOOD[1]],
    "empty payload beside two objects": [b"", b'{"id": 1}\n{"id": 2}', GOOD[1]],
    "pretty-printed": [json.dumps({"id": 1, "x": [1, 2]}, indent=2).encode(), GOOD[1]],
    "trailing newline": [GOOD[0] + b"\n", GOOD[1]],
    "leading space": [b" " + GOOD[0], GOOD[1]],
    "duplicate keys": [b'{"a": 1, "a": 2}', j({"a": 3})],
    "leading zeros and odd numbers": [b'{"a": 01}', b'{"a": .5}', b'{"a": +1}', b'{"a": 1.}', GOOD[0]],
    "raw control character": [b'{"s": "a\tb"}', j({"s": "c"})],
    "invalid utf-8": [b'{"s": "x\xff"}', j({"s": "y"})],
    "utf-8 bom": [b"\xef\xbb\xbf" + GOOD[0], GOOD[1]],
    "lone surrogate": [b'{"s": "\\ud800"}', j({"s": "y"})],
    "escaped keys": [b'{"a\\u0062": 1}', j({"ab": 2})],
    "escaped duplicate keys": [b'{"ab": 1, "a\\u0062": 2}'],
    "empty key": [b'{"": 1}', j({"": 2})],
    "exponents": [b'{"a": 1E5, "b": 1e+5, "c": 1e-5}', j({"a": 1, "b": 2, "c": 3})],
    "nested lists": [j({"a": [[1, 2], [3]]}), j({"a": [[1.5]]})],
    "long string": [j({"s": "x" * 100_000}), j({"s": "y"})],
    "tombstones": [GOOD[0], None, GOOD[1], None],
    "only tombstones": [None, None],
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_without_schema_bulk_equals_per_message(shape: str) -> None:
    assert_same(SHAPES[shape])


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_with_schema_bulk_equals_per_message(shape: str) -> None:
    assert_same(SHAPES[shape], SCHEMA)


TYPED = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        ("t", pa.float64()),
        ("f", pa.float32()),
        ("i", pa.int32()),
        ("s", pa.string()),
        ("b", pa.bool_()),
    ]
)
ROW: dict[str, Any] = {"id": 1, "t": 20.5, "f": 0.1, "i": 7, "s": "x", "b": True}
MISFITS: dict[str, dict[str, Any]] = {
    "string for a float": {"t": "hot"},
    "bool for a float": {"t": True},
    "int beyond int64 for a float": {"t": 2**70},
    "float for an int": {"i": 1.5},
    "integral float for an int": {"i": 1.0},
    "exponent for an int": {"i": 1e3},
    "int out of int32 range": {"i": 2**40},
    "int for a string": {"s": 1},
    "object for a string": {"s": {"x": 1}},
    "int for a bool": {"b": 1},
    "string for a bool": {"b": "true"},
    "missing required field": {"id": ...},
    "null required field": {"id": None},
    "null optional field": {"t": None},
    "missing optional field": {"t": ...},
    "extra fields": {"extra": {"deep": [2**70, "2024-01-01"]}},
}


@pytest.mark.parametrize("misfit", sorted(MISFITS))
def test_a_misfit_record_is_a_dead_letter_with_its_reason_and_the_rest_kept(misfit: str) -> None:
    record = {**ROW, **MISFITS[misfit]}
    record = {k: v for k, v in record.items() if v is not ...}
    payloads: list[bytes | None] = [j({**ROW, "id": i}) for i in range(5)]
    payloads.insert(2, j(record))
    bulk = assert_same(payloads, TYPED)
    batch, letters, _ = bulk
    fits = batch.num_rows == 6
    assert fits or (batch.num_rows == 5 and len(letters) == 1 and letters[0]["offset"] == 2)
    if not fits:
        field = next(k for k in MISFITS[misfit] if k in ROW or k == "extra")
        assert field in letters[0]["reason"]


def test_a_schema_with_timestamps_keeps_the_per_message_path() -> None:
    schema = pa.schema([("t", pa.timestamp("s")), ("x", pa.float64())])
    assert decode_json_batch([j({"t": "2024-01-01T00:00:00", "x": 1.0})], schema) is None
    assert_same([j({"t": "2024-01-01T00:00:00", "x": 1.0}), j({"t": 5, "x": 2.0})], schema)


def test_clean_batches_are_decoded_in_bulk() -> None:
    # a clean batch really takes the bulk path (otherwise the equalities above prove nothing)
    batch = decode_json_batch(GOOD, SCHEMA)
    assert batch is not None
    assert batch.schema == SCHEMA
    assert batch.column("id").to_pylist() == list(range(50))
    for shape in ("flat", "nested", "nulls", "missing and late fields", "unicode", "iso strings"):
        assert decode_json_batch([p for p in SHAPES[shape] if p is not None]) is not None, shape
    for shape in (
        "malformed",
        "mixed types",
        "ints beyond int64",
        "invalid utf-8",
        "two objects in one payload",
    ):
        assert decode_json_batch([p for p in SHAPES[shape] if p is not None]) is None, shape


def _random_value(rng: random.Random, depth: int) -> Any:
    kind = rng.choice(["int", "float", "str", "bool", "null", "big", "list", "dict"][: 8 if depth < 2 else 6])
    if kind == "int":
        return rng.randint(-1000, 1000)
    if kind == "float":
        return rng.choice([rng.uniform(-1e6, 1e6), 0.1, 1e-7, float(rng.randint(0, 9))])
    if kind == "str":
        return rng.choice(["a", "é", "😀", "2024-01-01T00:00:00", "x y", "", "\\n"])
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "big":
        return rng.choice([2**62, 2**63 - 1, 2**63, -(2**63), 2**70])
    if kind == "list":
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice("xyz"): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


@pytest.mark.parametrize("seed", range(40))
def test_random_batches_bulk_equals_per_message(seed: int) -> None:
    rng = random.Random(seed)
    # a few fields with one type each most of the time, sometimes a stray type or a bad payload
    kinds = {name: rng.choice([1, 1.5, "s", True, [1], {"x": 1}]) for name in "abcd"}
    payloads: list[bytes | None] = []
    for _ in range(rng.randint(1, 60)):
        record: dict[str, Any] = {}
        for name, example in kinds.items():
            if rng.random() < 0.1:
                continue  # missing
            if rng.random() < 0.05:
                record[name] = _random_value(rng, 0)  # a stray type
            elif isinstance(example, bool):
                record[name] = rng.random() < 0.5
            elif isinstance(example, float):
                record[name] = rng.uniform(-100, 100)
            elif isinstance(example, int):
                record[name] = rng.randint(-(10**6), 10**6)
            else:
                record[name] = example
        payloads.append(j(record) if rng.random() > 0.03 else rng.choice([b"{oops", None, b""]))
    assert_same(payloads)
    numeric = {name for name, example in kinds.items() if type(example) in (int, float)}
    schema = pa.schema([(name, pa.float64() if name in numeric else pa.string()) for name in "ab"])
    assert_same(payloads, schema)
