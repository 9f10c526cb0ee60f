"""The soft rules on their own: every tolerance just inside and just outside its boundary."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from checks import conf, rules
from checks.rules import Item, Limits, Loss, Transform
from ledger.protocol.canonical import canonical_bytes
from ledger.protocol.envelope import make_envelope, record_bytes
from ledger.protocol.hashing import ZERO_HASH_HEX, leaf_hash
from ledger.protocol.keys import generate_private_key, key_id, public_key_raw

DEFAULT = Limits()


def lim(process: str, **overrides: Any) -> Limits:
    return rules.limits_for(process, {process: overrides} if overrides else None)


# -- transit -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "rule"),
    [
        (100_000, None),
        (99_500, None),  # -0.5 % exactly: inside
        (99_499, rules.TRANSIT_LOSS),  # -0.501 %
        (100_500, None),  # +0.5 %: inside
        (100_501, rules.TRANSIT_GAIN),
    ],
)
def test_transit_tolerance_boundaries(received: int, rule: str | None) -> None:
    found = rules.transit(rules.Transit("b1", 10, 12, 100_000, received), DEFAULT)
    assert (found.rule if found else None) == rule
    if found:
        assert found.severity == rules.WARNING
        assert found.subject == "ship:10"
        assert found.seqs == (10, 12)
        assert found.evidence["expected_g"] == 100_000
        assert found.evidence["actual_g"] == received
        assert found.evidence["tolerance"] == 0.005


def test_transit_tolerance_is_overridable() -> None:
    limits = rules.limits_for("split", {"*": {"transit_tolerance": Fraction(3, 100)}})
    assert rules.transit(rules.Transit("b", 1, 2, 100_000, 97_000), limits) is None
    assert rules.transit(rules.Transit("b", 1, 2, 100_000, 96_999), limits) is not None


# -- process imbalance ---------------------------------------------------------------------


def transform(
    process: str, inputs: list[Item], outputs: list[Item], losses: int = 0, seq: int = 7
) -> Transform:
    return Transform(seq, process, tuple(inputs), tuple(outputs), (Loss("dust", losses),) if losses else ())


@pytest.mark.parametrize(
    ("out_g", "loss_g", "kind"),
    [
        (99_000, 0, None),  # -1 % exactly
        (98_999, 0, "leakage"),
        (97_000, 2_000, None),  # declared losses count
        (96_999, 2_000, "leakage"),
        (101_000, 0, None),  # +1 %
        (101_001, 0, "unrecorded_material"),
    ],
)
def test_process_imbalance_boundaries(out_g: int, loss_g: int, kind: str | None) -> None:
    t = transform(
        "split",
        [Item("in", "alloy", 100_000)],
        [Item("out", "alloy", out_g)],
        losses=loss_g,
    )
    found = rules.process_imbalance(t, lim("split"))
    assert (found.evidence["kind"] if found else None) == kind
    if found:
        assert found.rule == rules.PROCESS_IMBALANCE
        assert found.subject == "entry:7"
        assert found.evidence["expected_g"] == 100_000
        assert found.evidence["actual_g"] == out_g + loss_g
        assert found.evidence["tolerance"] == 0.01


def test_chemical_steps_have_no_total_mass_balance() -> None:
    t = transform("precipitation", [Item("in", "mixed_reo", 100_000)], [Item("out", "mixed_reo", 150_000)])
    assert rules.process_imbalance(t, lim("precipitation")) is None


# -- yield ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("powder_g", "flagged"),
    [(80_000, False), (79_999, True), (102_000, False), (102_001, True)],
)
def test_hpms_yield_range_boundaries(powder_g: int, flagged: bool) -> None:
    losses = max(0, 100_000 - powder_g)
    t = transform(
        "hpms", [Item("scrap", "magnet_scrap", 100_000)], [Item("powder", "alloy_powder", powder_g)], losses
    )
    found = rules.yield_out_of_range(t, lim("hpms"))
    assert (found is not None) == flagged
    if found:
        assert found.evidence["actual"] == powder_g / 100_000
        assert found.evidence["expected_min"] == 0.8
        assert found.evidence["expected_max"] == 1.02
        assert found.batch == "powder"


def test_hpms_yield_counts_only_the_powder_not_the_residue() -> None:
    t = transform(
        "hpms",
        [Item("scrap", "magnet_scrap", 100_000)],
        [Item("powder", "alloy_powder", 79_000), Item("res", "residue", 21_000)],
    )
    assert rules.process_imbalance(t, lim("hpms")) is None
    found = rules.yield_out_of_range(t, lim("hpms"))
    assert found is not None and found.evidence["product_g"] == 79_000


def test_yield_minimum_is_overridable_per_process() -> None:
    t = transform("hpms", [Item("s", "magnet_scrap", 100_000)], [Item("p", "alloy_powder", 76_000)], 24_000)
    assert rules.yield_out_of_range(t, lim("hpms")) is not None
    assert rules.yield_out_of_range(t, lim("hpms", yield_min=Fraction("0.75"))) is None


@pytest.mark.parametrize(
    ("composition", "metal_g", "flagged"),
    [
        ({"Nd": 857_400, "O": 142_600}, 64_305, False),  # 0.75 x 0.8574 = 0.64305 exactly
        ({"Nd": 857_400, "O": 142_600}, 64_304, True),
        (None, 64_305, False),  # unassayed: Nd2O3's factor
        (None, 64_304, True),
        ({"Pr": 827_700, "O": 172_300}, 62_077, True),  # Pr6O11: 0.75 x 0.8277 = 0.620775
        ({"Pr": 827_700, "O": 172_300}, 62_078, False),
    ],
)
def test_reduction_yield_scales_with_the_stoichiometric_factor(
    composition: dict[str, int] | None, metal_g: int, flagged: bool
) -> None:
    t = transform(
        "reduction",
        [Item("oxide", "separated_oxide", 100_000, composition)],
        [Item("metal", "metal", metal_g)],
        100_000 - metal_g,
    )
    found = rules.yield_out_of_range(t, lim("reduction"))
    assert (found is not None) == flagged
    _, source = rules.stoichiometric_factor(t.inputs)
    assert source == ("assay" if composition else "Nd2O3")


@pytest.mark.parametrize(
    ("magnet_g", "swarf_g", "problem"),
    [
        (60_000, 40_000, None),  # 0.60 exactly, swarf reported
        (59_999, 40_001, "below"),
        (75_000, 25_000, None),
        (75_000, 0, "no swarf"),
    ],
)
def test_sintering_yield_and_swarf(magnet_g: int, swarf_g: int, problem: str | None) -> None:
    outputs = [Item("mag", "magnet", magnet_g)]
    if swarf_g:
        outputs.append(Item("swarf", "swarf", swarf_g))
    t = transform("sintering", [Item("alloy", "alloy", 100_000)], outputs, 100_000 - magnet_g - swarf_g)
    found = rules.yield_out_of_range(t, lim("sintering"))
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found.summary
        assert found.evidence["swarf_reported"] == (swarf_g > 0)


RE_IN = {"Nd": 230_000, "Pr": 60_000, "Dy": 20_000, "Fe": 660_000}


@pytest.mark.parametrize(("reo_nd_ppm", "flagged"), [(261_000, False), (260_999, True)])
def test_leaching_rare_earth_recovery(reo_nd_ppm: int, flagged: bool) -> None:
    # In: 31,000 g of rare earths. Out: 100 kg holding Nd + 1,800 g Dy; 0.90 x 31,000 g =
    # 27,900 g of rare earths out, i.e. 261,000 ppm Nd exactly.
    out = {"Nd": reo_nd_ppm, "Pr": 0, "Dy": 18_000}
    t = transform(
        "leaching", [Item("scrap", "magnet_scrap", 100_000, RE_IN)], [Item("reo", "mixed_reo", 100_000, out)]
    )
    found = rules.yield_out_of_range(t, lim("leaching"))
    assert (found is not None) == flagged


def test_leaching_yield_needs_assays() -> None:
    t = transform("leaching", [Item("scrap", "magnet_scrap", 100_000)], [Item("reo", "mixed_reo", 1_000)])
    assert rules.yield_out_of_range(t, lim("leaching")) is None


# -- element gain --------------------------------------------------------------------------


@pytest.mark.parametrize("element", ["Nd", "Pr", "Dy", "Tb", "B", "Co"])
@pytest.mark.parametrize(("extra_ppm", "flagged"), [(0, False), (600, False), (601, True)])
def test_element_gain_boundaries(element: str, extra_ppm: int, flagged: bool) -> None:
    # 20,000 ppm of 100 kg = 2,000 g in; +3 % = 2,060 g = 20,600 ppm out.
    comp_in = {element: 20_000, "Fe": 600_000}
    comp_out = {element: 20_000 + extra_ppm, "Fe": 600_000}
    t = transform("split", [Item("in", "alloy", 100_000, comp_in)], [Item("out", "alloy", 100_000, comp_out)])
    found = rules.element_gain(t, lim("split"))
    assert (found is not None) == flagged
    if found:
        assert found.severity == rules.CRITICAL
        assert found.evidence["gained"] == [element]
        assert found.evidence["elements"][element]["in_g"] == 2000
        assert found.evidence["elements"][element]["out_g"] == 2000 + extra_ppm / 10


def test_element_gain_needs_every_input_assayed_and_counts_unassayed_outputs_as_zero() -> None:
    a = Item("a", "alloy", 50_000, {"Dy": 20_000})
    b = Item("b", "alloy", 50_000)
    out = Item("o", "alloy", 100_000, {"Dy": 40_000})
    assert rules.element_gain(transform("merge", [a, b], [out]), DEFAULT) is None
    # 1,000 g Dy in; an assayed output alone holds 2,000 g: certain gain despite the other output.
    found = rules.element_gain(
        transform("split", [a], [Item("o1", "alloy", 25_000, {"Dy": 80_000}), Item("o2", "alloy", 25_000)]),
        DEFAULT,
    )
    assert found is not None and found.evidence["unassayed_outputs"] == ["o2"]


# -- unassayed claim -----------------------------------------------------------------------


def test_unassayed_claim() -> None:
    assert rules.unassayed_claim(rules.Claim("m", 5, ("Dy",), (("p", "alloy_powder"),))) is not None
    assert rules.unassayed_claim(rules.Claim("m", 5, (), (("p", "alloy_powder"),))) is None
    assert rules.unassayed_claim(rules.Claim("m", 5, ("Dy",), ())) is None
    found = rules.unassayed_claim(rules.Claim("m", 5, ("Dy", "Nd"), (("m", "magnet"),)))
    assert found is not None and found.subject == "batch:m" and found.batches == ("m",)


# -- unreceived ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("after", "flagged"), [(timedelta(days=14), False), (timedelta(days=14, seconds=1), True)]
)
def test_unreceived_after_fourteen_days(after: timedelta, flagged: bool) -> None:
    shipped = datetime(2026, 1, 1, tzinfo=UTC)
    found = rules.unreceived(rules.OpenShipment("b", 3, shipped, 1000), shipped + after, DEFAULT)
    assert (found is not None) == flagged


# -- integrity -----------------------------------------------------------------------------


def _chain(n: int, key: Any) -> tuple[list[rules.StoredRecord], rules.KeyInfo]:
    records = []
    prev = ZERO_HASH_HEX
    kid = key_id(public_key_raw(key))
    for seq in range(n):
        payload = {"id": str(uuid.uuid4()), "type": "write_off", "org": "evtb", "mass_g": 10 + seq}
        env = make_envelope(key, payload)
        pb = canonical_bytes(payload)
        raw = record_bytes(seq, "2026-01-01T00:00:00.000000Z", prev, kid, pb, env["signature"])
        leaf = leaf_hash(raw).hex()
        records.append(
            rules.StoredRecord(
                seq,
                prev,
                leaf,
                raw.decode(),
                payload["id"],
                "write_off",
                kid,
                hashlib.sha256(pb).hexdigest(),
                "evtb",
            )
        )
        prev = leaf
    return records, rules.KeyInfo(public_key_raw(key), None, None)


def _verify(records: list[rules.StoredRecord], key: rules.KeyInfo) -> dict[int, list[str]]:
    out = {}
    prev = None
    for i, r in enumerate(records):
        found = rules.integrity(r, prev, key, expected_seq=i)
        if found:
            out[r.seq] = found.evidence["problems"]
        prev = r.leaf_hash
    return out


def test_integrity_of_an_intact_chain() -> None:
    records, key = _chain(3, generate_private_key())
    assert _verify(records, key) == {}


def test_integrity_catches_an_altered_payload_with_its_seq() -> None:
    records, key = _chain(3, generate_private_key())
    altered = records[1].canonical.replace('"mass_g":11', '"mass_g":99')
    records[1] = rules.StoredRecord(**{**records[1].__dict__, "canonical": altered})
    problems = _verify(records, key)
    assert list(problems) == [1]
    assert {"leaf_hash", "payload_digest", "signature"} <= set(problems[1])


def test_integrity_catches_a_rehashed_record_at_the_next_link_and_by_signature() -> None:
    records, key = _chain(3, generate_private_key())
    altered = records[1].canonical.replace('"mass_g":11', '"mass_g":99')
    new_leaf = leaf_hash(altered.encode()).hex()
    records[1] = rules.StoredRecord(**{**records[1].__dict__, "canonical": altered, "leaf_hash": new_leaf})
    problems = _verify(records, key)
    assert "signature" in problems[1] and "leaf_hash" not in problems[1]
    assert problems[2] == ["chain"]


def test_integrity_wrong_key_and_key_validity() -> None:
    records, _ = _chain(2, generate_private_key())
    other = rules.KeyInfo(public_key_raw(generate_private_key()), None, None)
    assert "signature" in _verify(records, other)[0]
    records, key = _chain(3, generate_private_key())
    revoked = rules.KeyInfo(key.public_key, registered_seq=0, revoked_seq=2)
    # registered at seq 0: valid for 1 only (registration precedes use; revoked from 2 on)
    assert _verify(records, revoked) == {0: ["key_not_valid_at_seq"], 2: ["key_not_valid_at_seq"]}
    assert rules.integrity(records[0], None, None) is not None


def test_integrity_reports_a_missing_record() -> None:
    records, key = _chain(3, generate_private_key())
    found = rules.integrity(records[2], records[0].leaf_hash, key, expected_seq=1)
    assert found is not None and set(found.evidence["problems"]) == {"gap", "chain"}
    assert found.severity == rules.CRITICAL and found.subject == "record:2"


# -- configuration -------------------------------------------------------------------------


def test_overrides_from_settings_are_typed(settings: Any) -> None:
    settings.LEDGER_CHECK_OVERRIDES = {"hpms": {"yield_min": 0.75}, "*": {"unreceived_days": 21}}
    assert conf.limits("hpms").yield_min == Fraction(3, 4)
    assert conf.limits("hpms").yield_max == Fraction("1.02")
    assert conf.limits("sintering").unreceived_days == 21
    assert conf.limits("sintering").yield_min == Fraction("0.6")


@pytest.mark.parametrize(
    "raw",
    [
        {"hpmz": {"yield_min": 0.7}},
        {"hpms": {"yield_minimum": 0.7}},
        {"hpms": {"yield_min": "lots"}},
        {"hpms": {"transit_tolerance": 0.01}},
        {"hpms": {"swarf_required": "yes"}},
        {"hpms": {"product_materials": ["unobtainium"]}},
        ["hpms"],
    ],
)
def test_malformed_overrides_are_refused(raw: Any) -> None:
    with pytest.raises(ImproperlyConfigured):
        conf.parse_overrides(raw)
