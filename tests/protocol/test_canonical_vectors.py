"""RFC 8785 (JCS) canonicalisation and strict JSON parsing against the shared vectors.

Vectors: ../shared/vectors/jcs/ (cyberphone/json-canonicalization test data, and the first
10,000 lines of the upstream ES6 number file; see PROVENANCE.md there). Read in place, never
copied into the project.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import pytest

from ledger.protocol.canonical import MAX_SAFE_INTEGER, ProtocolError, canonical_bytes, parse_json

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"
JCS = VECTORS / "jcs"
CASES = sorted(p.stem for p in (JCS / "input").glob("*.json"))


def test_vectors_are_where_we_expect() -> None:
    assert JCS.is_dir(), f"JCS vectors not found at {JCS}"
    assert CASES == ["arrays", "french", "structures", "unicode", "values", "weird"]
    assert (JCS / "es6_numbers_first10000.txt").is_file()


# --- cyberphone files ----------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_cyberphone_case_output_bytes(case: str) -> None:
    value = json.loads((JCS / "input" / f"{case}.json").read_bytes())
    expected = (JCS / "output" / f"{case}.json").read_bytes()
    assert canonical_bytes(value) == expected


@pytest.mark.parametrize("case", CASES)
def test_cyberphone_case_outhex(case: str) -> None:
    value = json.loads((JCS / "input" / f"{case}.json").read_bytes())
    expected = bytes.fromhex("".join((JCS / "outhex" / f"{case}.txt").read_text().split()))
    assert canonical_bytes(value) == expected


@pytest.mark.parametrize("case", CASES)
def test_cyberphone_case_through_strict_parser(case: str) -> None:
    """parse_json (what the service uses on request bodies) gives the same canonical bytes."""
    value = parse_json((JCS / "input" / f"{case}.json").read_bytes())
    assert canonical_bytes(value) == (JCS / "output" / f"{case}.json").read_bytes()


@pytest.mark.parametrize("case", CASES)
def test_canonical_output_is_a_fixed_point(case: str) -> None:
    expected = (JCS / "output" / f"{case}.json").read_bytes()
    assert canonical_bytes(parse_json(expected)) == expected


def test_utf16_key_order_not_code_point_order() -> None:
    # U+1F602 is the surrogate pair D83D DE02, which sorts before U+FB33 in UTF-16 code units
    # although its code point is larger.
    out = canonical_bytes({"\ufb33": 1, "\U0001f602": 2})
    assert out == '{"\U0001f602":2,"\ufb33":1}'.encode()
    out = canonical_bytes({"\U00010000": 1, "\ue000": 2})
    assert out == '{"\U00010000":1,"\ue000":2}'.encode()


def test_string_escapes_follow_ecmascript() -> None:
    value = '\b\t\n\f\r\x00\x1f"\\/\x7f\u2028\u2029é'
    assert canonical_bytes(value) == (
        '"\\b\\t\\n\\f\\r\\u0000\\u001f\\"\\\\/\x7f\u2028\u2029é"'.encode()
    )


# --- ES6 numbers -----------------------------------------------------------------------------


def _number_lines() -> list[tuple[str, str]]:
    text = (JCS / "es6_numbers_first10000.txt").read_text(encoding="ascii")
    assert text.endswith("\n")
    lines = text.split("\n")[:-1]
    pairs = []
    for line in lines:
        hex_bits, expected = line.split(",")
        assert 1 <= len(hex_bits) <= 16
        pairs.append((hex_bits, expected))
    return pairs


def _double(hex_bits: str) -> float:
    value: float = struct.unpack(">d", bytes.fromhex(hex_bits.zfill(16)))[0]
    return value


def test_es6_number_file_shape() -> None:
    pairs = _number_lines()
    assert len(pairs) == 10_000
    assert pairs[:2] == [("0", "0"), ("8000000000000000", "0")]
    # The upstream generator skips NaN and Infinity.
    assert all(math.isfinite(_double(h)) for h, _ in pairs)


def test_es6_numbers_canonicalise() -> None:
    failures = []
    for hex_bits, expected in _number_lines():
        got = canonical_bytes(_double(hex_bits))
        if got != expected.encode("ascii"):
            failures.append((hex_bits, expected, got))
    assert not failures, f"{len(failures)} mismatches, first: {failures[:5]}"


def test_es6_numbers_round_trip_through_parser() -> None:
    """The expected text parses back to the same double (-0 excepted: JCS writes it as 0)."""
    failures = []
    for hex_bits, expected in _number_lines():
        value = _double(hex_bits)
        parsed = parse_json(expected)
        if value == 0:
            assert parsed == 0
            continue
        if float(parsed) != value:
            failures.append((hex_bits, expected, parsed))
    assert not failures, failures[:5]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.0, b"0"),
        (-0.0, b"0"),
        (10.0, b"10"),
        (1e21, b"1e+21"),
        (1e20, b"100000000000000000000"),
        (1e-7, b"1e-7"),
        (0.000001, b"0.000001"),
        (333333333.33333329, b"333333333.3333333"),
        (MAX_SAFE_INTEGER, b"9007199254740991"),
        (-MAX_SAFE_INTEGER, b"-9007199254740991"),
    ],
)
def test_python_repr_traps(value: float, expected: bytes) -> None:
    assert canonical_bytes(value) == expected


# --- numbers JCS cannot carry ------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        MAX_SAFE_INTEGER + 1,
        MAX_SAFE_INTEGER + 2,
        -(MAX_SAFE_INTEGER + 1),
        10**30,
        [1, 2, 2**64],
        {"mass_g": 2**53},
        {"outer": {"inner": [-(2**63)]}},
    ],
)
def test_integers_beyond_safe_range_rejected(value: object) -> None:
    with pytest.raises(ProtocolError) as info:
        canonical_bytes(value)
    assert info.value.code == "number-out-of-range"
    assert "2^53" in info.value.detail


def test_big_integer_from_json_text_rejected() -> None:
    value = parse_json('{"mass_g": 9007199254740993}')
    with pytest.raises(ProtocolError) as info:
        canonical_bytes(value)
    assert info.value.code == "number-out-of-range"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, [1, math.nan], {"x": math.inf}])
def test_nan_and_infinity_rejected(value: object) -> None:
    with pytest.raises(ProtocolError) as info:
        canonical_bytes(value)
    assert info.value.code == "number-out-of-range"


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"x": -Infinity}'])
def test_parser_rejects_nan_and_infinity_literals(text: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_json(text)
    assert info.value.code == "number-out-of-range"


def test_overflowing_number_literal_cannot_be_canonicalised() -> None:
    # json.loads turns 1e400 into inf; whichever stage notices, it must not get through.
    with pytest.raises(ProtocolError) as info:
        canonical_bytes(parse_json("[1e400]"))
    assert info.value.code == "number-out-of-range"


@pytest.mark.parametrize(
    "value",
    ["\ud800", ["ok", "\udfff"], {"\udc00": 1}, {"a": 1, "b\ud800": 2}, {1: "a"}, {None: 1}],
)
def test_other_non_canonicalizable_values(value: object) -> None:
    with pytest.raises(ProtocolError) as info:
        canonical_bytes(value)
    assert info.value.code == "not-canonicalizable"


@pytest.mark.parametrize("text", ['"\\ud800"', '{"\\udc00": 1}', '{"k": ["\\ud83d"]}'])
def test_lone_surrogate_from_json_text_rejected(text: str) -> None:
    # json.loads accepts lone surrogate escapes; canonicalisation must refuse them cleanly.
    with pytest.raises(ProtocolError) as info:
        canonical_bytes(parse_json(text))
    assert info.value.code == "not-canonicalizable"


# --- strict parsing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "a": 2}',
        '{"a": 1, "a": 1}',
        '{"x": {"b": true, "c": null, "b": false}}',
        '[{"ok": 1}, {"dup": 1, "dup": 2}]',
        '{"a": 1, "\\u0061": 2}',
    ],
)
def test_duplicate_member_rejected(text: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_json(text)
    assert info.value.code == "duplicate-member"
    assert "twice" in info.value.detail


def test_same_name_in_different_objects_is_fine() -> None:
    assert parse_json('{"a": {"a": 1}, "b": [{"a": 2}, {"a": 3}]}') == {
        "a": {"a": 1},
        "b": [{"a": 2}, {"a": 3}],
    }


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ('{"a": 1,}', 1, 9),
        ("", 1, 1),
        ("{} x", 1, 4),
        ('{\n  "a": 1,\n  "b" 2\n}', 3, 7),
        ("[1, 2", 1, 6),
        ("{'a': 1}", 1, 2),
    ],
)
def test_malformed_json_reports_line_and_column(text: str, line: int, column: int) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_json(text)
    assert info.value.code == "malformed-json"
    assert f"line {line}, column {column}" in info.value.detail


def test_malformed_json_bytes_and_invalid_utf8() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_json(b'{"a": }')
    assert info.value.code == "malformed-json"
    assert "line 1, column 7" in info.value.detail
    with pytest.raises(ProtocolError) as info:
        parse_json(b'{"a": "\xff"}')
    assert info.value.code == "malformed-json"
