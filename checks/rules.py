"""The soft rules: pure functions over plain domain objects, no ORM, no Django.

Each rule takes what it needs as dataclasses and returns zero or one ``Finding``: the rule,
its severity, the subject it is about (a stable key, so that the same problem never becomes
two flags), the batches and log seqs involved and the numbers that prove it. Tolerances
are compared exactly, as fractions, so a boundary is a boundary: 0.5 % is flagged only when
the deviation is strictly greater than 5/1000.

Defaults live in ``GLOBAL_DEFAULTS`` and ``PROCESS_DEFAULTS`` below (DESIGN "Soft rules" and
reference/domain.md §1.3-1.6) and are overridden per process through
``settings.LEDGER_CHECK_OVERRIDES`` (read by ``checks.conf``).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.protocol.canonical import canonical_bytes
from ledger.protocol.envelope import b64url_decode, record_bytes
from ledger.protocol.hashing import ZERO_HASH_HEX, leaf_hash

PPM = 1_000_000

# Rules (Flag.rule) and their severities.
TRANSIT_LOSS = "transit_loss"
TRANSIT_GAIN = "transit_gain"
PROCESS_IMBALANCE = "process_imbalance"
YIELD_OUT_OF_RANGE = "yield_out_of_range"
ELEMENT_GAIN = "element_gain"
UNASSAYED_CLAIM = "unassayed_claim"
UNRECEIVED = "unreceived"
INTEGRITY = "integrity"
RULES = (
    TRANSIT_LOSS,
    TRANSIT_GAIN,
    PROCESS_IMBALANCE,
    YIELD_OUT_OF_RANGE,
    ELEMENT_GAIN,
    UNASSAYED_CLAIM,
    UNRECEIVED,
    INTEGRITY,
)
CRITICAL = "critical"
WARNING = "warning"
# No process creates Dy, and a record that no longer verifies undermines everything after it.
SEVERITY = {rule: (CRITICAL if rule in (ELEMENT_GAIN, INTEGRITY) else WARNING) for rule in RULES}

# Elements whose grams are balanced across a transform: the CRMA Art. 29 list (reference/domain.md
# §2) minus what NdFeB never carries in practice is still balanced when assays report it.
BALANCED_ELEMENTS = ("Nd", "Pr", "Dy", "Tb", "B", "Co", "Sm", "Ni")
RARE_EARTHS = frozenset("Sc Y La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb Lu".split())
# Elements that leave an oxide (or oxalate) when it is reduced to metal: not "metal".
NON_METALS = frozenset("H C N O F S Cl".split())
# reference/domain.md §1.4: metal fraction of each oxide (IUPAC atomic masses).
METAL_FRACTION_OF_OXIDE: dict[str, Fraction] = {
    "Nd2O3": Fraction("0.8574"),
    "Pr6O11": Fraction("0.8277"),
    "Dy2O3": Fraction("0.8713"),
    "Tb4O7": Fraction("0.8502"),
    "Sm2O3": Fraction("0.8624"),
}
# Without an assay of the oxide, which oxide it is cannot be known; Nd2O3 is the bulk of
# didymium and separated oxide output, so its factor is the default.
DEFAULT_OXIDE = "Nd2O3"
# Outputs that are by-products, never "the product" in a yield (see product_outputs).
BY_PRODUCTS = frozenset({"residue", "swarf"})


@dataclass(frozen=True)
class Limits:
    """Tolerances and ranges for one process (or the global ones, under process "*").

    Fractions are exact; ``None`` switches a check off. ``yield_basis`` is ``mass`` (product
    grams / input grams) or ``rare_earths`` (rare-earth grams in the product / in the inputs,
    from assays). ``stoichiometric`` scales ``yield_min`` by the metal fraction of the oxide
    input (oxide -> metal). ``product_materials`` names the materials that count as the
    product; empty means every output that is not residue or swarf.
    """

    transit_tolerance: Fraction = Fraction(5, 1000)
    unreceived_days: int = 14
    balance_tolerance: Fraction | None = Fraction(1, 100)
    element_tolerance: Fraction = Fraction(3, 100)
    yield_min: Fraction | None = None
    yield_max: Fraction | None = None
    yield_basis: str = "mass"
    stoichiometric: bool = False
    product_materials: frozenset[str] = frozenset()
    swarf_required: bool = False


GLOBAL_DEFAULTS = Limits()

# reference/domain.md §1.6, per process. Chemical steps where reagents add mass to the
# products (leaching, precipitation, solvent extraction) have no total-mass balance: their
# rare-earth grams are balanced per element instead (element_gain) and leaching has a
# rare-earth recovery yield.
PROCESS_DEFAULTS: dict[str, dict[str, Any]] = {
    "hpms": {
        "yield_min": Fraction("0.80"),
        "yield_max": Fraction("1.02"),
        "product_materials": frozenset({"alloy_powder"}),
    },
    "hddr": {
        "yield_min": Fraction("0.80"),
        "yield_max": Fraction("1.02"),
        "product_materials": frozenset({"alloy_powder"}),
    },
    "leaching": {"balance_tolerance": None, "yield_min": Fraction("0.90"), "yield_basis": "rare_earths"},
    "precipitation": {"balance_tolerance": None},
    "solvent_extraction": {"balance_tolerance": None},
    "reduction": {
        "yield_min": Fraction("0.75"),
        "stoichiometric": True,
        "product_materials": frozenset({"metal"}),
    },
    "sintering": {
        "yield_min": Fraction("0.60"),
        "product_materials": frozenset({"magnet"}),
        "swarf_required": True,
    },
    "machining": {
        "yield_min": Fraction("0.60"),
        "product_materials": frozenset({"magnet"}),
        "swarf_required": True,
    },
}


def limits_for(process: str, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> Limits:
    """The limits of ``process``: global defaults, then the process's defaults, then the
    overrides under "*" and under the process (already validated by checks.conf)."""
    overrides = overrides or {}
    merged: dict[str, Any] = {}
    merged.update(PROCESS_DEFAULTS.get(process, {}))
    merged.update(overrides.get("*", {}))
    merged.update(overrides.get(process, {}))
    return replace(GLOBAL_DEFAULTS, **merged)


@dataclass(frozen=True)
class Finding:
    """One problem found by a rule; becomes at most one flag per (rule, subject)."""

    rule: str
    subject: str
    batch: str | None
    batches: tuple[str, ...]
    seqs: tuple[int, ...]
    evidence: dict[str, Any]
    summary: str

    @property
    def severity(self) -> str:
        return SEVERITY[self.rule]


def _num(value: Fraction) -> float:
    """A fraction as a JSON number for evidence (rounded for people, not for decisions)."""
    return round(float(value), 6)


# -- transit -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Transit:
    """A closed shipment: what was shipped and what the recipient weighed on arrival."""

    batch: str
    ship_seq: int
    receive_seq: int
    shipped_g: int
    received_g: int


def transit(t: Transit, limits: Limits) -> Finding | None:
    """Received differs from shipped by more than the transit tolerance (±0.5 %)."""
    diff = t.received_g - t.shipped_g
    deviation = Fraction(abs(diff), t.shipped_g)
    if deviation <= limits.transit_tolerance:
        return None
    rule = TRANSIT_LOSS if diff < 0 else TRANSIT_GAIN
    return Finding(
        rule=rule,
        subject=f"ship:{t.ship_seq}",
        batch=t.batch,
        batches=(t.batch,),
        seqs=(t.ship_seq, t.receive_seq),
        evidence={
            "expected_g": t.shipped_g,
            "actual_g": t.received_g,
            "difference_g": diff,
            "deviation": _num(Fraction(diff, t.shipped_g)),
            "tolerance": _num(limits.transit_tolerance),
            "entries": [t.ship_seq, t.receive_seq],
        },
        summary=(
            f"{t.batch}: shipped {t.shipped_g} g, received {t.received_g} g "
            f"({_num(Fraction(diff * 100, t.shipped_g)):+g} %, "
            f"tolerance ±{_num(limits.transit_tolerance * 100)} %)"
        ),
    )


# -- transforms --------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """A batch on one side of a transform: grams consumed (input) or created (output), its
    material and its composition (element -> ppm) as best known, ``None`` when unassayed."""

    batch: str
    material: str
    mass_g: int
    composition: Mapping[str, int] | None = None


@dataclass(frozen=True)
class Loss:
    kind: str
    mass_g: int


@dataclass(frozen=True)
class Transform:
    """A ``transform`` entry as the rules see it."""

    seq: int
    process: str
    inputs: tuple[Item, ...]
    outputs: tuple[Item, ...]
    losses: tuple[Loss, ...] = ()
    assay_seqs: tuple[int, ...] = field(default=(), compare=False)

    @property
    def input_g(self) -> int:
        return sum(i.mass_g for i in self.inputs)

    @property
    def output_g(self) -> int:
        return sum(o.mass_g for o in self.outputs)

    @property
    def loss_g(self) -> int:
        return sum(loss.mass_g for loss in self.losses)

    @property
    def batches(self) -> tuple[str, ...]:
        return tuple(i.batch for i in self.inputs) + tuple(o.batch for o in self.outputs)


def product_outputs(t: Transform, limits: Limits) -> tuple[Item, ...]:
    """The outputs that count as "the product" of a transform for its yield.

    The process's ``product_materials`` when set (hpms: alloy_powder; reduction: metal;
    sintering and machining: magnet); otherwise every output except by-products (residue,
    swarf). By-products stay in the mass balance but would inflate a yield: magnet making
    that reports 25 % swarf has a 0.75 yield, not 1.0.
    """
    if limits.product_materials:
        return tuple(o for o in t.outputs if o.material in limits.product_materials)
    return tuple(o for o in t.outputs if o.material not in BY_PRODUCTS)


def subject_batch(t: Transform, limits: Limits) -> str | None:
    """The batch a transform's flag is filed under: its first product, else its first output."""
    products = product_outputs(t, limits)
    if products:
        return products[0].batch
    return t.outputs[0].batch if t.outputs else (t.inputs[0].batch if t.inputs else None)


def _transform_finding(
    rule: str, t: Transform, limits: Limits, evidence: dict[str, Any], summary: str
) -> Finding:
    return Finding(
        rule=rule,
        subject=f"entry:{t.seq}",
        batch=subject_batch(t, limits),
        batches=t.batches,
        seqs=(t.seq, *t.assay_seqs),
        evidence={"process": t.process, **evidence, "entries": [t.seq, *t.assay_seqs]},
        summary=summary,
    )


def process_imbalance(t: Transform, limits: Limits) -> Finding | None:
    """Outputs + declared losses differ from inputs by more than ±1 %.

    Less out than in is unexplained loss (leakage); more is unrecorded material.
    """
    if limits.balance_tolerance is None or t.input_g == 0:
        return None
    accounted = t.output_g + t.loss_g
    diff = accounted - t.input_g
    tol = limits.balance_tolerance
    if abs(diff) * tol.denominator <= tol.numerator * t.input_g:
        return None
    kind = "leakage" if diff < 0 else "unrecorded_material"
    return _transform_finding(
        PROCESS_IMBALANCE,
        t,
        limits,
        {
            "kind": kind,
            "expected_g": t.input_g,
            "actual_g": accounted,
            "outputs_g": t.output_g,
            "declared_losses_g": t.loss_g,
            "difference_g": diff,
            "deviation": _num(Fraction(diff, t.input_g)),
            "tolerance": _num(limits.balance_tolerance),
        },
        f"{t.process} #{t.seq}: inputs {t.input_g} g, outputs + declared losses {accounted} g "
        f"({kind.replace('_', ' ')} {abs(diff)} g)",
    )


def _grams(item: Item, element: str) -> Fraction:
    assert item.composition is not None
    return Fraction(item.mass_g * item.composition.get(element, 0), PPM)


def stoichiometric_factor(inputs: Sequence[Item]) -> tuple[Fraction, str]:
    """Metal fraction of the oxide inputs of a reduction, and where it came from.

    With every input assayed it is the mass-weighted share of the metals (everything but
    O, C, H, N, F, S, Cl) in their compositions; otherwise Nd2O3's 0.8574 (domain.md §1.4).
    """
    total = sum(i.mass_g for i in inputs)
    if total > 0 and all(i.composition for i in inputs):
        metal = sum(
            (
                Fraction(
                    i.mass_g * sum(ppm for el, ppm in (i.composition or {}).items() if el not in NON_METALS),
                    PPM,
                )
                for i in inputs
            ),
            Fraction(0),
        )
        return metal / total, "assay"
    return METAL_FRACTION_OF_OXIDE[DEFAULT_OXIDE], DEFAULT_OXIDE


def yield_out_of_range(t: Transform, limits: Limits) -> Finding | None:
    """Product / input outside the process's range, or a required swarf output missing.

    hpms and hddr: 0.80-1.02; sintering and machining: >= 0.60 with swarf among the
    outputs; reduction: >= 0.75 x the stoichiometric factor; leaching: rare-earth recovery
    >= 0.90 (needs assays of every input and of the products; skipped otherwise).
    """
    if limits.yield_min is None and limits.yield_max is None and not limits.swarf_required:
        return None
    products = product_outputs(t, limits)
    evidence: dict[str, Any] = {"basis": limits.yield_basis}
    problems = []
    low, high = limits.yield_min, limits.yield_max
    ratio: Fraction | None = None
    if limits.yield_basis == "rare_earths":
        if all(i.composition for i in t.inputs) and products and all(p.composition for p in products):
            re_in = sum((_grams(i, el) for i in t.inputs for el in RARE_EARTHS), Fraction(0))
            re_out = sum((_grams(p, el) for p in products for el in RARE_EARTHS), Fraction(0))
            if re_in > 0:
                ratio = re_out / re_in
                evidence.update(expected_g=_num(re_in), actual_g=_num(re_out))
    elif t.input_g > 0:
        product_g = sum(p.mass_g for p in products)
        ratio = Fraction(product_g, t.input_g)
        evidence.update(input_g=t.input_g, product_g=product_g)
        if limits.stoichiometric:
            factor, source = stoichiometric_factor(t.inputs)
            evidence.update(stoichiometric_factor=_num(factor), factor_source=source)
            low = None if low is None else low * factor
            high = None if high is None else high * factor
    if ratio is not None:
        if low is not None and ratio < low:
            problems.append(f"yield {_num(ratio)} below {_num(low)}")
        if high is not None and ratio > high:
            problems.append(f"yield {_num(ratio)} above {_num(high)}")
    swarf_g = sum(o.mass_g for o in t.outputs if o.material == "swarf")
    if limits.swarf_required and swarf_g == 0:
        problems.append("no swarf output reported")
    if not problems:
        return None
    evidence["products"] = [p.batch for p in products]
    if ratio is not None:
        evidence.update(
            actual=_num(ratio),
            expected_min=None if low is None else _num(low),
            expected_max=None if high is None else _num(high),
        )
    if limits.swarf_required:
        evidence.update(swarf_reported=swarf_g > 0, swarf_g=swarf_g)
    evidence["problems"] = problems
    return _transform_finding(
        YIELD_OUT_OF_RANGE, t, limits, evidence, f"{t.process} #{t.seq}: " + "; ".join(problems)
    )


def element_gain(t: Transform, limits: Limits, elements: Sequence[str] = BALANCED_ELEMENTS) -> Finding | None:
    """An element's grams out exceed its grams in by more than the assay error (3 %).

    Needs the composition of every input (otherwise the grams in are unknown and nothing is
    claimed). Outputs without a composition count as zero, so what is compared is a lower
    bound of the grams out: a gain found that way is certain.
    """
    if not t.inputs or not all(i.composition is not None for i in t.inputs):
        return None
    # Exact integer arithmetic in gram-ppm (grams x 10^6): this runs on every transform
    # of a full sweep, where fractions would cost more than everything else together.
    num, den = limits.element_tolerance.numerator, limits.element_tolerance.denominator
    assayed_outputs = [o for o in t.outputs if o.composition is not None]
    totals: dict[str, tuple[int, int]] = {}
    gained = []
    for element in elements:
        grams_in = grams_out = 0
        for i in t.inputs:
            grams_in += i.mass_g * i.composition.get(element, 0)  # type: ignore[union-attr]
        for o in assayed_outputs:
            grams_out += o.mass_g * o.composition.get(element, 0)  # type: ignore[union-attr]
        if grams_in == 0 and grams_out == 0:
            continue
        totals[element] = (grams_in, grams_out)
        if grams_out * den > grams_in * (den + num):
            gained.append(element)
    if not gained:
        return None
    per_element: dict[str, dict[str, Any]] = {}
    for element, (grams_in, grams_out) in totals.items():
        entry = {"in_g": _num(Fraction(grams_in, PPM)), "out_g": _num(Fraction(grams_out, PPM))}
        if element in gained:
            entry["gain_g"] = _num(Fraction(grams_out - grams_in, PPM))
        per_element[element] = entry
    if not gained:
        return None
    return _transform_finding(
        ELEMENT_GAIN,
        t,
        limits,
        {
            "elements": per_element,
            "gained": gained,
            "tolerance": _num(limits.element_tolerance),
            "unassayed_outputs": [o.batch for o in t.outputs if o.composition is None],
        },
        f"{t.process} #{t.seq}: more {', '.join(gained)} out than in "
        + ", ".join(f"{el} {per_element[el]['in_g']} g -> {per_element[el]['out_g']} g" for el in gained),
    )


TRANSFORM_RULES = (process_imbalance, yield_out_of_range, element_gain)


def check_transform(t: Transform, limits: Limits) -> list[Finding]:
    """Every transform rule, in order."""
    return [f for rule in TRANSFORM_RULES if (f := rule(t, limits)) is not None]


# -- claims and shipments ----------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """A batch leaving its custodian (``ship``) with its recycled-content figures, and the
    batches of its pedigree (itself included) that should have been assayed and were not."""

    batch: str
    ship_seq: int
    recycled_elements: tuple[str, ...]
    unassayed: tuple[tuple[str, str], ...]  # (batch, material)


def unassayed_claim(c: Claim) -> Finding | None:
    """A recycled-content figure rests on a batch with no composition.

    Flagged when the shipped batch claims a recycled share for some CRMA element and it,
    or a batch upstream whose material can be assayed, has no composition: the element
    grams behind the share are then not known.
    """
    if not c.recycled_elements or not c.unassayed:
        return None
    return Finding(
        rule=UNASSAYED_CLAIM,
        subject=f"batch:{c.batch}",
        batch=c.batch,
        batches=(c.batch, *(b for b, _ in c.unassayed if b != c.batch)),
        seqs=(c.ship_seq,),
        evidence={
            "expected": "a composition on every assayable batch of the pedigree",
            "actual": [{"batch": b, "material": m} for b, m in c.unassayed],
            "claimed_elements": list(c.recycled_elements),
            "entries": [c.ship_seq],
        },
        summary=(
            f"{c.batch} shipped with recycled-content figures for {', '.join(c.recycled_elements)} "
            f"but {len(c.unassayed)} batch(es) of its pedigree have no assay"
        ),
    )


@dataclass(frozen=True)
class OpenShipment:
    batch: str
    ship_seq: int
    shipped_at: datetime
    mass_g: int


def unreceived(s: OpenShipment, now: datetime, limits: Limits) -> Finding | None:
    """Shipped, not received within 14 days (exactly 14 days is still in time)."""
    allowed = timedelta(days=limits.unreceived_days)
    waited = now - s.shipped_at
    if waited <= allowed:
        return None
    return Finding(
        rule=UNRECEIVED,
        subject=f"ship:{s.ship_seq}",
        batch=s.batch,
        batches=(s.batch,),
        seqs=(s.ship_seq,),
        evidence={
            "expected": f"received within {limits.unreceived_days} days",
            "actual": f"in transit for {waited.days} days",
            "shipped_at": s.shipped_at.isoformat(),
            "checked_at": now.isoformat(),
            "mass_g": s.mass_g,
            "tolerance_days": limits.unreceived_days,
            "entries": [s.ship_seq],
        },
        summary=f"{s.batch} shipped at #{s.ship_seq} and not received after {waited.days} days",
    )


# -- integrity ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyInfo:
    """A signing key and the log seqs between which it was valid."""

    public_key: bytes
    registered_seq: int | None  # None: the log key, valid from the start
    revoked_seq: int | None


@dataclass(frozen=True)
class StoredRecord:
    """A LogRecord row as stored: the canonical bytes and the columns copied from them."""

    seq: int
    prev: str
    leaf_hash: str
    canonical: str
    entry_id: str
    entry_type: str
    key_id: str
    payload_digest: str
    org_slug: str


@functools.lru_cache(maxsize=4096)
def _public_key(raw: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(raw)


def _split_payload(raw: bytes, sig: str) -> bytes | None:
    start = b'{"envelope":{"key_id":"'
    head_len = len(start) + 64 + len(b'","payload":')
    tail = b',"signature":"' + sig.encode("ascii") + b'"},"prev":"'
    end = raw.rfind(tail)
    if not raw.startswith(start) or end < head_len:
        return None
    return raw[head_len:end]


def integrity(
    r: StoredRecord,
    previous_leaf: str | None,
    key: KeyInfo | None,
    *,
    expected_seq: int | None = None,
    recheck_canonical: bool = True,
    check_signature: bool = True,
) -> Finding | None:
    """A stored record no longer hashes, chains or verifies: critical.

    Checks, in order: the leaf hash of the stored bytes; the link to the previous record's
    stored leaf hash (``previous_leaf``; 64 zeros before seq 0, ``None`` when not known);
    that the bytes are JCS of a record with exactly the four fields whose copies in the
    columns agree; the payload digest; the signature under ``key``, and that the key was
    valid at this seq; and, given ``expected_seq``, that no record is missing before it.
    ``check_signature`` false skips the signature (only) for a record whose bytes a signed
    checkpoint already pins and whose signature an earlier sweep verified.
    """
    problems: list[str] = []
    if expected_seq is not None and r.seq != expected_seq:
        problems.append("gap")
    raw = r.canonical.encode("utf-8")
    actual_leaf = leaf_hash(raw).hex()
    if actual_leaf != r.leaf_hash:
        problems.append("leaf_hash")
    expected_prev = ZERO_HASH_HEX if r.seq == 0 else previous_leaf
    if expected_prev is not None and r.prev != expected_prev:
        problems.append("chain")
    payload_bytes: bytes | None = None
    try:
        record = json.loads(raw)
        envelope = record["envelope"]
        payload = envelope["payload"]
        if set(record) != {"seq", "recorded_at", "prev", "envelope"} or set(envelope) != {
            "payload",
            "key_id",
            "signature",
        }:
            raise ValueError("fields")
        payload_bytes = _split_payload(raw, envelope["signature"])
        if payload_bytes is None or raw != record_bytes(
            record["seq"],
            record["recorded_at"],
            record["prev"],
            envelope["key_id"],
            payload_bytes,
            envelope["signature"],
        ):
            raise ValueError("layout")
        if recheck_canonical and canonical_bytes(payload) != payload_bytes:
            raise ValueError("payload not canonical")
        columns = {
            "seq": (record["seq"], r.seq),
            "prev": (record["prev"], r.prev),
            "key_id": (envelope["key_id"], r.key_id),
            "entry_id": (payload.get("id"), r.entry_id),
            "entry_type": (payload.get("type"), r.entry_type),
            "org": (payload.get("org"), r.org_slug),
        }
        problems += [f"column:{name}" for name, (a, b) in columns.items() if a != b]
        if hashlib.sha256(payload_bytes).hexdigest() != r.payload_digest:
            problems.append("payload_digest")
    except (ValueError, KeyError, TypeError, AttributeError):
        problems.append("not_canonical_record")
        payload_bytes = None
    if key is None:
        problems.append("unknown_key")
    else:
        if key.registered_seq is not None and not (
            key.registered_seq < r.seq and (key.revoked_seq is None or r.seq < key.revoked_seq)
        ):
            problems.append("key_not_valid_at_seq")
        if payload_bytes is not None and check_signature:
            try:
                signature = b64url_decode(record["envelope"]["signature"])
                _public_key(key.public_key).verify(signature, payload_bytes)
            except (InvalidSignature, ValueError):
                problems.append("signature")
    if not problems:
        return None
    return Finding(
        rule=INTEGRITY,
        subject=f"record:{r.seq}",
        batch=None,
        batches=(),
        seqs=(r.seq,),
        evidence={
            "seq": r.seq,
            "problems": problems,
            "expected": {"leaf_hash": r.leaf_hash, "prev": expected_prev},
            "actual": {"leaf_hash": actual_leaf, "prev": r.prev},
            "entries": [r.seq],
        },
        summary=f"record #{r.seq} fails integrity: {', '.join(problems)}",
    )


def checkpoint_mismatch(size: int, signed_root: str, computed_root: str) -> Finding | None:
    """The stored leaf hashes of the first ``size`` records no longer hash to the root the
    log key signed in checkpoint ``size``: a record was altered after it was published."""
    if signed_root == computed_root:
        return None
    return Finding(
        rule=INTEGRITY,
        subject=f"checkpoint:{size}",
        batch=None,
        batches=(),
        seqs=(),
        evidence={
            "checkpoint_size": size,
            "expected": {"root": signed_root},
            "actual": {"root": computed_root},
            "problems": ["checkpoint_root"],
        },
        summary=f"the first {size} records no longer hash to the root of signed checkpoint {size}",
    )
