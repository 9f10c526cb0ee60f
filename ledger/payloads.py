"""Schema and units of entry payloads: one validator per entry type.

Validators take the payload as parsed JSON and return nothing, raising EntryRejected with
a JSON Pointer (relative to the envelope, e.g. ``/payload/inputs/0/mass_g``) on the first
problem. They check form only; rules that need the ledger's state live in services.py.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ledger.errors import EntryRejected
from ledger.models import EntryType, Material, Process
from ledger.protocol.canonical import MAX_SAFE_INTEGER, pointer_token

BATCH_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
SLUG = re.compile(r"[a-z0-9][a-z0-9-]{1,39}")
SHORT_CODE = re.compile(r"[a-z][a-z0-9_]{0,31}")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|\+00:00)")
PPM_TOTAL = 1_000_000
MAX_NOTE = 500

ELEMENTS = frozenset(
    "H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As "
    "Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu "
    "Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U".split()
)
ORIGINS = ("post_consumer", "pre_consumer", "primary")
# Built once: rebuilding them per field cost 1.5 % of a bulk (docs/PERFORMANCE.md profile).
MATERIALS = tuple(Material.values)
PROCESSES = tuple(Process.values)
WRITE_OFF_REASONS = ("disposal", "sample", "destroyed", "lost", "other")
SUBMITTABLE_TYPES = (
    EntryType.INTAKE,
    EntryType.SHIP,
    EntryType.RECEIVE,
    EntryType.TRANSFORM,
    EntryType.ASSAY,
    EntryType.WRITE_OFF,
    EntryType.ATTEST,
)
COMMON_FIELDS = {"id", "type", "org", "facility", "occurred_at"}
OPTIONAL_COMMON = {"note", "documents"}


def _fail(code: str, detail: str, pointer: str) -> EntryRejected:
    return EntryRejected(code, detail, pointer)


def _string(
    obj: dict[str, Any],
    name: str,
    ptr: str,
    pattern: re.Pattern[str] | None = None,
    choices: tuple[str, ...] | None = None,
    what: str = "",
) -> str:
    value = obj.get(name)
    where = f"{ptr}/{name}"
    if value is None:
        raise _fail("invalid-payload", f"{name} is required.", where)
    if not isinstance(value, str):
        raise _fail("invalid-payload", f"{name} must be a string.", where)
    if choices is not None and value not in choices:
        raise _fail("invalid-payload", f"{name} must be one of {', '.join(choices)}; got {value!r}.", where)
    if pattern is not None and not pattern.fullmatch(value):
        raise _fail("invalid-payload", f"{name} {value!r} is not {what or 'well-formed'}.", where)
    return value


def _mass(obj: dict[str, Any], name: str, ptr: str) -> int:
    value = obj.get(name)
    where = f"{ptr}/{name}"
    if value is None:
        raise _fail("invalid-mass", f"{name} is required (whole grams).", where)
    if isinstance(value, bool) or not isinstance(value, int):
        kind = "a float" if isinstance(value, float) else type(value).__name__
        raise _fail("invalid-mass", f"{name} must be a JSON integer number of grams, not {kind}.", where)
    if value <= 0:
        raise _fail("invalid-mass", f"{name} must be positive; got {value}.", where)
    if value > MAX_SAFE_INTEGER:
        raise _fail("invalid-mass", f"{name} exceeds 2^53-1 grams.", where)
    return value


def _composition(value: Any, where: str) -> dict[str, int]:
    if not isinstance(value, dict) or not value:
        raise _fail("invalid-composition", "composition is a non-empty object of element -> ppm.", where)
    total = 0
    for element, ppm in value.items():
        if element not in ELEMENTS:
            raise _fail(
                "invalid-composition",
                f"{element!r} is not an element symbol.",
                f"{where}/{pointer_token(element)}",
            )
        if isinstance(ppm, bool) or not isinstance(ppm, int) or ppm < 0:
            raise _fail(
                "invalid-composition", f"{element} must be a non-negative integer ppm.", f"{where}/{element}"
            )
        total += ppm
    if total > PPM_TOTAL:
        raise _fail(
            "invalid-composition", f"The element fractions sum to {total} ppm, above 1,000,000.", where
        )
    return value


def _optional_composition(obj: dict[str, Any], ptr: str) -> None:
    if "composition" in obj:
        _composition(obj["composition"], f"{ptr}/composition")


def _list(
    obj: dict[str, Any], name: str, ptr: str, required: bool = True, max_items: int = 1000
) -> list[Any]:
    value = obj.get(name)
    where = f"{ptr}/{name}"
    if value is None:
        if required:
            raise _fail("invalid-payload", f"{name} is required (a non-empty list).", where)
        return []
    if not isinstance(value, list) or (required and not value):
        raise _fail("invalid-payload", f"{name} must be a non-empty list.", where)
    if len(value) > max_items:
        raise _fail("invalid-payload", f"{name} has more than {max_items} items.", where)
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise _fail("invalid-payload", f"{name}[{i}] must be an object.", f"{where}/{i}")
    return value


def _only(obj: dict[str, Any], allowed: set[str], ptr: str) -> None:
    extra = sorted(set(obj) - allowed)
    if extra:
        raise _fail(
            "invalid-payload",
            f"Unexpected field {extra[0]!r}; allowed here: {', '.join(sorted(allowed))}.",
            f"{ptr}/{pointer_token(extra[0])}",
        )


def _batch_ref(obj: dict[str, Any], ptr: str, name: str = "batch") -> str:
    return _string(obj, name, ptr, BATCH_ID, what="a batch id (^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$)")


def parse_occurred_at(value: str) -> datetime:
    """Parse an RFC 3339 UTC timestamp (``Z`` or ``+00:00``)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _intake(p: dict[str, Any], ptr: str) -> set[str]:
    _batch_ref(p, ptr)
    _string(p, "material", ptr, choices=MATERIALS)
    _mass(p, "mass_g", ptr)
    _optional_composition(p, ptr)
    origin = _string(p, "origin", ptr, choices=ORIGINS)
    if origin == "primary":
        _string(p, "supplier", ptr)
        _string(p, "certificate_sha256", ptr, SHA256_HEX, what="a lowercase hex SHA-256")
    if "units" in p:
        units = p["units"]
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise _fail("invalid-payload", "units must be a positive integer.", f"{ptr}/units")
    if "product" in p:
        _string(p, "product", ptr, SHORT_CODE, what="a product code like ev_traction_motor")
    return {
        "batch",
        "material",
        "mass_g",
        "composition",
        "origin",
        "supplier",
        "certificate_sha256",
        "units",
        "product",
    }


def _ship(p: dict[str, Any], ptr: str) -> set[str]:
    _batch_ref(p, ptr)
    _mass(p, "mass_g", ptr)
    _string(p, "to_org", ptr, SLUG, what="an organisation slug")
    if "to_facility" in p:
        _string(p, "to_facility", ptr, SLUG, what="a facility code")
    return {"batch", "mass_g", "to_org", "to_facility"}


def _receive(p: dict[str, Any], ptr: str) -> set[str]:
    _batch_ref(p, ptr)
    _mass(p, "mass_g", ptr)
    return {"batch", "mass_g"}


def _transform(p: dict[str, Any], ptr: str) -> set[str]:
    process = _string(p, "process", ptr, choices=PROCESSES)
    inputs = _list(p, "inputs", ptr)
    outputs = _list(p, "outputs", ptr)
    losses = _list(p, "losses", ptr, required=False)
    seen: set[str] = set()
    for i, item in enumerate(inputs):
        where = f"{ptr}/inputs/{i}"
        _only(item, {"batch", "mass_g"}, where)
        batch = _batch_ref(item, where)
        if batch in seen:
            raise _fail("invalid-payload", f"Batch {batch!r} is listed twice in inputs.", f"{where}/batch")
        seen.add(batch)
        _mass(item, "mass_g", where)
    for i, item in enumerate(outputs):
        where = f"{ptr}/outputs/{i}"
        _only(item, {"batch", "material", "mass_g", "composition"}, where)
        batch = _batch_ref(item, where)
        if batch in seen:
            raise _fail(
                "invalid-payload",
                f"Batch {batch!r} appears twice among inputs and outputs.",
                f"{where}/batch",
            )
        seen.add(batch)
        _string(item, "material", where, choices=MATERIALS)
        _mass(item, "mass_g", where)
        _optional_composition(item, where)
    for i, item in enumerate(losses):
        where = f"{ptr}/losses/{i}"
        _only(item, {"kind", "mass_g"}, where)
        _string(item, "kind", where, SHORT_CODE, what="a loss kind like dust or off_gas")
        _mass(item, "mass_g", where)
    if process == Process.SPLIT and len(inputs) != 1:
        raise _fail("invalid-payload", "A split has exactly one input.", f"{ptr}/inputs")
    if process == Process.MERGE and len(outputs) != 1:
        raise _fail("invalid-payload", "A merge has exactly one output.", f"{ptr}/outputs")
    return {"process", "inputs", "outputs", "losses"}


def _assay(p: dict[str, Any], ptr: str) -> set[str]:
    _batch_ref(p, ptr)
    if "composition" not in p:
        raise _fail("invalid-composition", "composition is required.", f"{ptr}/composition")
    _composition(p["composition"], f"{ptr}/composition")
    _string(p, "lab", ptr)
    _string(p, "method", ptr)
    _string(p, "certificate_sha256", ptr, SHA256_HEX, what="a lowercase hex SHA-256")
    return {"batch", "composition", "lab", "method", "certificate_sha256"}


def _write_off(p: dict[str, Any], ptr: str) -> set[str]:
    _batch_ref(p, ptr)
    _mass(p, "mass_g", ptr)
    _string(p, "reason", ptr, choices=WRITE_OFF_REASONS)
    return {"batch", "mass_g", "reason"}


VERDICTS = ("confirmed", "disputed", "resolved")


def _attest(p: dict[str, Any], ptr: str) -> set[str]:
    subject = p.get("subject")
    where = f"{ptr}/subject"
    if not isinstance(subject, dict) or len(subject) != 1:
        raise _fail(
            "invalid-payload", 'subject is one of {"flag": <id>}, {"batch": <id>} or {"seq": <n>}.', where
        )
    if "batch" in subject:
        _batch_ref(subject, where)
    elif "flag" in subject or "seq" in subject:
        name = "flag" if "flag" in subject else "seq"
        value = subject[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > MAX_SAFE_INTEGER:
            raise _fail(
                "invalid-payload", f"subject.{name} must be a non-negative integer.", f"{where}/{name}"
            )
    else:
        _only(subject, {"flag", "batch", "seq"}, where)
    _string(p, "verdict", ptr, choices=VERDICTS)
    if "note" not in p:
        raise _fail("invalid-payload", "note is required: say what the verdict rests on.", f"{ptr}/note")
    return {"subject", "verdict"}


VALIDATORS: dict[str, Callable[[dict[str, Any], str], set[str]]] = {
    EntryType.INTAKE: _intake,
    EntryType.SHIP: _ship,
    EntryType.RECEIVE: _receive,
    EntryType.TRANSFORM: _transform,
    EntryType.ASSAY: _assay,
    EntryType.WRITE_OFF: _write_off,
    EntryType.ATTEST: _attest,
}


def validate_payload(payload: dict[str, Any], ptr: str = "/payload") -> None:
    """Check a submitted payload's common fields and its type's fields and units."""
    entry_id = _string(payload, "id", ptr)
    try:
        canonical_id = str(uuid.UUID(entry_id))
    except ValueError:
        canonical_id = ""
    if canonical_id != entry_id:
        raise _fail("invalid-payload", "id must be a UUID in lowercase hyphenated form.", f"{ptr}/id")
    kind = _string(payload, "type", ptr)
    if kind not in VALIDATORS:
        raise _fail(
            "invalid-payload",
            f"type must be one of {', '.join(VALIDATORS)}; {kind!r} cannot be submitted.",
            f"{ptr}/type",
        )
    _string(payload, "org", ptr, SLUG, what="an organisation slug")
    _string(payload, "facility", ptr, SLUG, what="a facility code")
    occurred = _string(payload, "occurred_at", ptr, RFC3339_UTC, what="an RFC 3339 UTC time (…Z)")
    try:
        parse_occurred_at(occurred)
    except ValueError:
        raise _fail(
            "invalid-payload", f"occurred_at {occurred!r} is not a real time.", f"{ptr}/occurred_at"
        ) from None
    if "note" in payload:
        note = _string(payload, "note", ptr)
        if len(note) > MAX_NOTE:
            raise _fail("invalid-payload", f"note is longer than {MAX_NOTE} characters.", f"{ptr}/note")
    for i, doc in enumerate(_list(payload, "documents", ptr, required=False, max_items=50)):
        where = f"{ptr}/documents/{i}"
        _only(doc, {"kind", "sha256"}, where)
        _string(doc, "kind", where, SHORT_CODE, what="a document kind like assay_certificate")
        _string(doc, "sha256", where, SHA256_HEX, what="a lowercase hex SHA-256")
    allowed = VALIDATORS[kind](payload, ptr)
    _only(payload, COMMON_FIELDS | OPTIONAL_COMMON | allowed, ptr)
