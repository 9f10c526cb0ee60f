"""RFC 8785 (JCS) canonical JSON bytes, and strict parsing of JSON text."""

from __future__ import annotations

import json
from typing import Any

import rfc8785

# I-JSON (RFC 7493) integers: JCS serialises numbers as IEEE-754 doubles, so anything
# beyond +-(2**53 - 1) would not round-trip between implementations.
MAX_SAFE_INTEGER = 2**53 - 1


class ProtocolError(ValueError):
    """Input that cannot be canonicalised, parsed or verified.

    ``pointer`` is an RFC 6901 JSON Pointer into the offending document ("" is the whole
    document); ``code`` is a stable machine-readable name for the problem.
    """

    def __init__(self, code: str, detail: str, pointer: str = "") -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.pointer = pointer


def pointer_token(name: str) -> str:
    """A member name as one JSON Pointer reference token (RFC 6901: ~ is ~0, / is ~1)."""
    return name.replace("~", "~0").replace("/", "~1")


def canonical_bytes(value: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of a JSON value.

    Raises ProtocolError for values JCS cannot represent (big integers, NaN, lone
    surrogates, non-string keys).
    """
    try:
        return rfc8785.dumps(value)
    except rfc8785.IntegerDomainError as exc:
        raise ProtocolError(
            "number-out-of-range",
            f"Integer {exc.args[0] if exc.args else ''} is outside +-(2^53-1); "
            "send larger numbers as strings.",
        ) from exc
    except rfc8785.FloatDomainError as exc:
        raise ProtocolError("number-out-of-range", "NaN and Infinity are not JSON.") from exc
    except rfc8785.CanonicalizationError as exc:
        raise ProtocolError("not-canonicalizable", f"Cannot canonicalise: {exc}") from exc
    except UnicodeEncodeError as exc:
        # rfc8785 sorts keys by their UTF-16 encoding, which fails on a lone surrogate in a
        # member name (lone surrogates in values raise CanonicalizationError above).
        raise ProtocolError(
            "not-canonicalizable", "Cannot canonicalise: a member name contains a lone surrogate."
        ) from exc


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ProtocolError("duplicate-member", f"Member {key!r} appears twice in one object (I-JSON).")
        obj[key] = value
    return obj


def _reject_constant(name: str) -> Any:
    raise ProtocolError("number-out-of-range", f"{name} is not valid JSON.")


def parse_json(text: str | bytes) -> Any:
    """Parse JSON text strictly: no duplicate member names, no NaN/Infinity.

    Raises ProtocolError("malformed-json") with line and column on a syntax error.
    """
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ProtocolError(
            "malformed-json",
            f"The body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
        ) from exc
    except UnicodeDecodeError as exc:
        raise ProtocolError("malformed-json", "The body is not valid UTF-8.") from exc
