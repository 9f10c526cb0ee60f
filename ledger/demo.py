"""The demonstration chain: organisations, personas and every custody step, in one place.

120 end-of-life EV traction motors are taken back and dismantled in Germany; the magnets go to
an HPMS plant in the UK, whose oxidised fines go to a hydrometallurgical refinery in France
(leaching, solvent extraction, reduction to NdPr metal); the HPMS powder, the NdPr metal, the
magnet maker's own swarf and a primary alloy are melted into a new alloy, sintered into a
magnet lot and shipped to an OEM. Figures come from /work/shared/reference/domain.md (sections
named next to them; docs/demo.md lists them all).

Two anomalies are deliberate, so that the mass-balance checks have something to find:
* the HPMS powder shipment loses 2.5 % in transit (tolerance 0.5 %, domain.md 1.6);
* HPMS run B yields 0.70 powder per scrap (plausible range 0.80-1.02, domain.md 1.6).

``steps()`` is the only definition of the chain. ``seed()`` submits it with deterministic ids
(uuid5 of the step name), so running it again replays it idempotently through
``services.submit_entries``; ``export_payloads()`` writes it with fresh ids and suffixed batch
ids as a new chain for the ``magledger`` client.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.db import transaction

from accounts.models import ApiToken, Facility, Organisation, SigningKey, User
from accounts.onboarding import OnboardingError, create_organisation, member
from ledger import services
from ledger.errors import EntryRejected
from ledger.models import LogRecord
from ledger.payloads import parse_occurred_at
from ledger.protocol.envelope import b64url_encode, make_envelope
from ledger.protocol.hashing import sha256_hex
from ledger.protocol.keys import (
    generate_private_key,
    key_id,
    load_private_key_file,
    public_key_raw,
    write_private_key_file,
)

# Payload ids of the seeded chain are uuid5(NAMESPACE, step name). Changing a step's content
# without renaming it makes an existing seed conflict (id-conflict), which is the point.
NAMESPACE = uuid.UUID("6f0f7d1e-3a52-5c1b-9b7e-0d4c2a8e5f10")
# The chain starts this long before it is first seeded and spans 43 days, so every
# occurred_at lies in the past.
CHAIN_AGE = timedelta(days=50)
SUFFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,15}")


class DemoError(Exception):
    """The demo cannot be seeded or exported; the message says why and what to do."""


@dataclass(frozen=True)
class DemoOrg:
    """One organisation of the demo, with the persona name clients and scripts use."""

    persona: str
    slug: str
    name: str
    role: str
    facility: str
    facility_name: str
    country: str

    @property
    def username(self) -> str:
        return f"{self.slug}-demo"


# fmt: off
ORGS: tuple[DemoOrg, ...] = (
    DemoOrg("recycler", "evcycle", "EVcycle Rücknahme GmbH", "processor", "evcycle-leipzig",
            "Take-back and dismantling centre, Leipzig", "DE"),
    DemoOrg("processor", "h2mag", "H2Mag Recycling Ltd", "processor", "h2mag-birmingham",
            "HPMS plant, Birmingham", "GB"),
    DemoOrg("refinery", "terrarefine", "TerraRefine SAS", "processor", "terrarefine-lacq",
            "Hydrometallurgy and metal plant, Lacq", "FR"),
    DemoOrg("lab", "isolab", "IsoLab Analytics Ltd", "lab", "isolab-sheffield",
            "ICP-OES laboratory, Sheffield", "GB"),
    DemoOrg("magnet_maker", "sintermag", "SinterMag GmbH", "processor", "sintermag-hanau",
            "Sintered magnet plant, Hanau", "DE"),
    DemoOrg("oem", "voltmotor", "Voltmotor Antriebe AG", "oem", "voltmotor-stuttgart",
            "Traction motor assembly, Stuttgart", "DE"),
    DemoOrg("auditor", "certis", "Certis Assurance GmbH", "auditor", "certis-berlin",
            "Certification office, Berlin", "DE"),
)
# fmt: on
BY_PERSONA: dict[str, DemoOrg] = {o.persona: o for o in ORGS}

# Batch ids of the seeded chain, by role in the chain (--json prints them; the export
# suffixes every one).
BATCHES: dict[str, str] = {
    "motors": "evcycle-motors-0001",
    "magnet_scrap": "evcycle-magscrap-0001",
    "motor_residue": "evcycle-residue-0001",
    "powder_run_a": "h2mag-powder-0001a",
    "powder_run_b": "h2mag-powder-0001b",
    "hpms_fines": "h2mag-fines-0001",
    "powder": "h2mag-powder-0001",
    "mixed_reo": "terrarefine-mreo-0001",
    "leach_residue": "terrarefine-fe-residue-0001",
    "ndpr_oxide": "terrarefine-ndpr-oxide-0001",
    "dy_oxide": "terrarefine-dy-oxide-0001",
    "raffinate": "terrarefine-raffinate-0001",
    "ndpr_metal": "terrarefine-ndpr-metal-0001",
    "swarf_intake": "sintermag-swarf-0001",
    "primary_alloy": "sintermag-primary-0001",
    "alloy": "sintermag-alloy-0001",
    "magnet_lot": "sintermag-magnets-0001",
    "swarf_out": "sintermag-swarf-0002",
}

# -- compositions (element -> ppm by mass) --------------------------------------------------
# Where a composition sums to less than 1,000,000 the rest was not assayed (oxygen in the
# oxides, hydrogen in HPMS powder). Leaving it out is deliberate: oxygen from reagents and
# air is not a gain of any element the ledger balances.

# fmt: off
# EV traction grade, domain.md 1.1 "fixture composition": Nd 23.0 Pr 6.0 Dy 2.0 Tb 0.3 B 1.0
# Co 1.0 Al+Cu+Ga 0.7 Fe 66.0 wt %.
EV_MAGNET = {"Nd": 230000, "Pr": 60000, "Dy": 20000, "Tb": 3000, "B": 10000, "Co": 10000,
             "Al": 3000, "Cu": 2000, "Ga": 2000, "Fe": 660000}
# HPMS powder as the plant declares it: the scrap's metals, 0.35 % hydrogen not assayed.
POWDER_DECLARED = {"Nd": 229200, "Pr": 59800, "Dy": 19900, "Tb": 3000, "B": 10000, "Co": 10000,
                   "Al": 3000, "Cu": 2000, "Ga": 2000, "Fe": 657600}
# The lab's ICP-OES (metals) and inert gas fusion (oxygen) result on the merged powder lot; it supersedes
# the declared composition.
POWDER_ASSAY = {"Nd": 228000, "Pr": 59500, "Dy": 19800, "Tb": 2900, "B": 9900, "Co": 9800,
                "Al": 3000, "Cu": 2000, "Ga": 1900, "O": 3500, "Fe": 659700}
# Coated, non-decrepitated pieces screened off the HPMS powder (2 % unassayed: coating, oxide).
HPMS_FINES = {"Nd": 225000, "Pr": 58700, "Dy": 19600, "Tb": 2900, "B": 9800, "Co": 9800,
              "Al": 2900, "Cu": 2000, "Ga": 1900, "Fe": 647000}
# Mixed rare-earth oxide after leaching and oxalate precipitation: 96.7 % of the RE recovered
# (domain.md 1.3, Aalto: +20 % oxalic acid), as oxides by the 1.4 factors, ~1 % Fe2O3
# co-precipitated; oxygen (the balance) not listed.
MIXED_REO = {"Nd": 620100, "Pr": 161800, "Dy": 54000, "Tb": 8000, "Fe": 7300}
# Solvent extraction to 99.7 % purity (domain.md 1.3, Ionic Technologies); oxygen not listed.
NDPR_OXIDE = {"Nd": 674900, "Pr": 176100, "Dy": 300}
DY_OXIDE = {"Dy": 869000, "Tb": 1000}
# NdPr metal from molten fluoride electrolysis (domain.md 1.3).
NDPR_METAL = {"Nd": 793000, "Pr": 206500}
# The magnet maker's own grinding swarf from earlier campaigns (pre-consumer), oxidised.
SWARF = {"Nd": 226000, "Pr": 59000, "Dy": 19500, "Tb": 2900, "B": 9800, "Co": 9800, "Al": 3000,
         "Cu": 1500, "Ga": 1500, "O": 12000, "C": 3000, "Fe": 652000}
# Primary strip-cast NdFeB alloy flake, low-Dy grade, within domain.md 1.1 ranges.
PRIMARY_ALLOY = {"Nd": 240000, "Pr": 62000, "Dy": 12000, "B": 10000, "Co": 10000, "Al": 3000,
                 "Cu": 1500, "Ga": 1500, "Fe": 660000}
# fmt: on


def mixed(parts: Sequence[tuple[int, Mapping[str, int]]]) -> dict[str, int]:
    """The composition of a melt of (mass_g, composition) parts: mass-weighted, rounded down,
    so no element gains grams and the sum stays within 1,000,000 ppm."""
    total = sum(mass for mass, _ in parts)
    elements = sorted({e for _, comp in parts for e in comp})
    return {e: sum(mass * comp.get(e, 0) for mass, comp in parts) // total for e in elements}


# -- figures (grams) -------------------------------------------------------------------------
MOTORS = 120
MOTOR_G = 42_000  # average traction motor as taken back (assumption, not in domain.md)
MAGNET_PER_MOTOR_G = 1_800  # domain.md 1.2: 1-2 kg NdFeB per small car motor
MOTORS_G = MOTORS * MOTOR_G  # 5,040,000
MAGNET_SCRAP_G = MOTORS * MAGNET_PER_MOTOR_G  # 216,000
SCRAP_RECEIVED_G = 215_352  # weighed 0.3 % light: inside the 0.5 % tolerance
RUN_A_IN_G, RUN_A_POWDER_G, RUN_A_FINES_G = 150_000, 135_000, 11_250  # yield 0.90 (HPMS 90 +- 5 %)
RUN_B_IN_G = SCRAP_RECEIVED_G - RUN_A_IN_G  # 65,352
RUN_B_POWDER_G = 45_746  # ANOMALY: yield 0.700, below the HPMS floor of 0.80 (domain.md 1.6)
POWDER_G = RUN_A_POWDER_G + RUN_B_POWDER_G  # 180,746
POWDER_RECEIVED_G = 176_227  # ANOMALY: 2.5 % lost in transit, tolerance 0.5 % (domain.md 1.6)
FINES_RECEIVED_G = 11_230  # 0.18 % light: inside tolerance
MREO_G = 3_940
NDPR_OXIDE_G, DY_OXIDE_G = 3_584, 242
NDPR_METAL_G = 2_592  # 0.85 x the oxide's metal content (domain.md 1.6: factor x 0.80-0.95)
SWARF_IN_G = 40_000
PRIMARY_G = 250_000
MELT_G = POWDER_RECEIVED_G + SWARF_IN_G + PRIMARY_G + NDPR_METAL_G  # 468,819
ALLOY_G = 464_131  # 99.0 % of the melt; 1 % dross
MAGNETS_G = 343_457  # 0.74 of the alloy (domain.md 1.6: 0.70-0.80)
SWARF_OUT_G = 116_033  # 0.25 of the alloy (domain.md 1.3: swarf 20-30 %)
ALLOY = mixed(
    [
        (POWDER_RECEIVED_G, POWDER_ASSAY),
        (SWARF_IN_G, SWARF),
        (PRIMARY_G, PRIMARY_ALLOY),
        (NDPR_METAL_G, NDPR_METAL),
    ]
)


@dataclass(frozen=True)
class Step:
    """One entry of the chain: who submits it, when (after the chain's start) and what."""

    name: str  # stable: seeds the payload id; its first word names the export file
    persona: str
    at: timedelta
    type: str
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def what(self) -> str:
        return self.name.split("-")[0]


def _day(day: int, hour: int = 9, minute: int = 0) -> timedelta:
    return timedelta(days=day, hours=hour, minutes=minute)


def _to(persona: str) -> dict[str, str]:
    org = BY_PERSONA[persona]
    return {"to_org": org.slug, "to_facility": org.facility}


def steps(b: Mapping[str, str] = BATCHES, tag: str = "") -> list[Step]:
    """The chain in submission order. ``b`` maps BATCHES' keys to batch ids; ``tag`` makes the
    stand-in document digests of an exported chain differ from the seeded one's."""

    def doc(kind: str, text: str) -> dict[str, str]:
        # Documents stay off the log; entries commit to them by SHA-256 (DESIGN "Units").
        return {"kind": kind, "sha256": digest(text)}

    def digest(text: str) -> str:
        return sha256_hex(f"magnet-ledger demo document: {text}{tag}".encode())

    # fmt: off
    return [
        Step("intake-motors", "recycler", _day(0, 8), "intake", {
            "batch": b["motors"], "material": "eol_product", "mass_g": MOTORS_G,
            "origin": "post_consumer", "product": "ev_traction_motor", "units": MOTORS,
            "documents": [doc("take_back_manifest", "EVcycle take-back manifest TB-2291")],
            "note": "120 end-of-life EV traction motors from take-back (dealer returns).",
        }),
        Step("dismantle-motors", "recycler", _day(3, 10), "transform", {
            "process": "dismantling",
            "inputs": [{"batch": b["motors"], "mass_g": MOTORS_G}],
            "outputs": [
                {"batch": b["magnet_scrap"], "material": "magnet_scrap", "mass_g": MAGNET_SCRAP_G,
                 "composition": EV_MAGNET},
                {"batch": b["motor_residue"], "material": "residue", "mass_g": 4_812_000},
            ],
            "losses": [{"kind": "fluids_and_dust", "mass_g": 12_000}],
            "note": "Rotors opened, magnets demagnetised and removed: 1.8 kg per motor.",
        }),
        Step("ship-magnet-scrap", "recycler", _day(4, 7, 30), "ship", {
            "batch": b["magnet_scrap"], "mass_g": MAGNET_SCRAP_G, **_to("processor"),
            "documents": [doc("delivery_note", "EVcycle delivery note DN-5530")],
        }),
        Step("receive-magnet-scrap", "processor", _day(7, 14), "receive", {
            "batch": b["magnet_scrap"], "mass_g": SCRAP_RECEIVED_G,
            "documents": [doc("weighbridge_ticket", "H2Mag weighbridge ticket 88121")],
        }),
        Step("hpms-run-a", "processor", _day(9), "transform", {
            "process": "hpms",
            "inputs": [{"batch": b["magnet_scrap"], "mass_g": RUN_A_IN_G}],
            "outputs": [
                {"batch": b["powder_run_a"], "material": "alloy_powder", "mass_g": RUN_A_POWDER_G,
                 "composition": POWDER_DECLARED},
                {"batch": b["hpms_fines"], "material": "magnet_scrap", "mass_g": RUN_A_FINES_G,
                 "composition": HPMS_FINES},
            ],
            "losses": [{"kind": "coating_and_dust", "mass_g": 3_750}],
        }),
        # Deliberate anomaly: output/input 0.70, below the HPMS range 0.80-1.02. The balance
        # closes only because the plant declares a large loss; the yield check flags it.
        Step("hpms-run-b", "processor", _day(10), "transform", {
            "process": "hpms",
            "inputs": [{"batch": b["magnet_scrap"], "mass_g": RUN_B_IN_G}],
            "outputs": [
                {"batch": b["powder_run_b"], "material": "alloy_powder", "mass_g": RUN_B_POWDER_G,
                 "composition": POWDER_DECLARED},
            ],
            "losses": [{"kind": "unreacted_fraction", "mass_g": RUN_B_IN_G - RUN_B_POWDER_G}],
            "note": "Reactor 2: incomplete decrepitation reported.",
        }),
        Step("merge-powder", "processor", _day(10, 17), "transform", {
            "process": "merge",
            "inputs": [{"batch": b["powder_run_a"], "mass_g": RUN_A_POWDER_G},
                       {"batch": b["powder_run_b"], "mass_g": RUN_B_POWDER_G}],
            "outputs": [{"batch": b["powder"], "material": "alloy_powder", "mass_g": POWDER_G}],
        }),
        Step("assay-powder", "lab", _day(12, 11), "assay", {
            "batch": b["powder"], "composition": POWDER_ASSAY, "lab": "IsoLab Analytics Ltd",
            "method": "ICP-OES (metals), inert gas fusion (O)",
            "certificate_sha256": digest("IsoLab certificate IL-24-0917"),
        }),
        Step("ship-fines", "processor", _day(13, 8), "ship", {
            "batch": b["hpms_fines"], "mass_g": RUN_A_FINES_G, **_to("refinery"),
        }),
        # Deliberate anomaly: received 2.5 % lighter than shipped (step receive-powder).
        Step("ship-powder", "processor", _day(13, 10), "ship", {
            "batch": b["powder"], "mass_g": POWDER_G, **_to("magnet_maker"),
            "documents": [doc("delivery_note", "H2Mag delivery note HM-0412")],
        }),
        Step("receive-powder", "magnet_maker", _day(15, 13), "receive", {
            "batch": b["powder"], "mass_g": POWDER_RECEIVED_G,
            "documents": [doc("weighbridge_ticket", "SinterMag goods-in ticket 31877")],
            "note": "Two drums short-filled on arrival.",
        }),
        Step("receive-fines", "refinery", _day(16), "receive", {
            "batch": b["hpms_fines"], "mass_g": FINES_RECEIVED_G,
        }),
        Step("leach-fines", "refinery", _day(19), "transform", {
            "process": "leaching",
            "inputs": [{"batch": b["hpms_fines"], "mass_g": FINES_RECEIVED_G}],
            "outputs": [
                {"batch": b["mixed_reo"], "material": "mixed_reo", "mass_g": MREO_G,
                 "composition": MIXED_REO},
                {"batch": b["leach_residue"], "material": "residue", "mass_g": 7_010},
            ],
            "losses": [{"kind": "leach_effluent", "mass_g": 280}],
            "note": "Acid leach, oxalate precipitation and calcination; dry-mass accounting.",
        }),
        Step("separate-reo", "refinery", _day(25), "transform", {
            "process": "solvent_extraction",
            "inputs": [{"batch": b["mixed_reo"], "mass_g": MREO_G}],
            "outputs": [
                {"batch": b["ndpr_oxide"], "material": "separated_oxide", "mass_g": NDPR_OXIDE_G,
                 "composition": NDPR_OXIDE},
                {"batch": b["dy_oxide"], "material": "separated_oxide", "mass_g": DY_OXIDE_G,
                 "composition": DY_OXIDE},
                {"batch": b["raffinate"], "material": "residue", "mass_g": 80},
            ],
            "losses": [{"kind": "sx_losses", "mass_g": 34}],
        }),
        Step("reduce-ndpr", "refinery", _day(30), "transform", {
            "process": "reduction",
            "inputs": [{"batch": b["ndpr_oxide"], "mass_g": NDPR_OXIDE_G}],
            "outputs": [{"batch": b["ndpr_metal"], "material": "metal", "mass_g": NDPR_METAL_G,
                         "composition": NDPR_METAL}],
            "losses": [{"kind": "oxygen_off_gas", "mass_g": 534},
                       {"kind": "salt_and_unreduced", "mass_g": 458}],
        }),
        Step("ship-ndpr-metal", "refinery", _day(31), "ship", {
            "batch": b["ndpr_metal"], "mass_g": NDPR_METAL_G, **_to("magnet_maker"),
        }),
        Step("receive-ndpr-metal", "magnet_maker", _day(33, 10), "receive", {
            "batch": b["ndpr_metal"], "mass_g": NDPR_METAL_G,
        }),
        Step("intake-swarf", "magnet_maker", _day(33, 15), "intake", {
            "batch": b["swarf_intake"], "material": "swarf", "mass_g": SWARF_IN_G, "origin": "pre_consumer",
            "composition": SWARF, "note": "Own grinding swarf from campaigns 24-07 to 24-09, deoxidised.",
        }),
        Step("intake-primary-alloy", "magnet_maker", _day(34), "intake", {
            "batch": b["primary_alloy"], "material": "alloy", "mass_g": PRIMARY_G, "origin": "primary",
            "composition": PRIMARY_ALLOY, "supplier": "Demo Primary Alloys Co. (strip-cast flake)",
            "certificate_sha256": digest("primary alloy mill certificate PA-77812"),
        }),
        Step("alloy-melt", "magnet_maker", _day(36), "transform", {
            "process": "alloying",
            "inputs": [
                {"batch": b["powder"], "mass_g": POWDER_RECEIVED_G},
                {"batch": b["swarf_intake"], "mass_g": SWARF_IN_G},
                {"batch": b["primary_alloy"], "mass_g": PRIMARY_G},
                {"batch": b["ndpr_metal"], "mass_g": NDPR_METAL_G},
            ],
            "outputs": [{"batch": b["alloy"], "material": "alloy", "mass_g": ALLOY_G, "composition": ALLOY}],
            "losses": [{"kind": "melt_dross", "mass_g": MELT_G - ALLOY_G}],
        }),
        Step("sinter-magnets", "magnet_maker", _day(40), "transform", {
            "process": "sintering",
            "inputs": [{"batch": b["alloy"], "mass_g": ALLOY_G}],
            "outputs": [
                {"batch": b["magnet_lot"], "material": "magnet", "mass_g": MAGNETS_G, "composition": ALLOY},
                {"batch": b["swarf_out"], "material": "swarf", "mass_g": SWARF_OUT_G, "composition": ALLOY},
            ],
            "losses": [{"kind": "oxidation_and_grinding", "mass_g": ALLOY_G - MAGNETS_G - SWARF_OUT_G}],
            "note": "Jet milled, pressed, sintered and machined: about 190 motor sets.",
        }),
        Step("ship-magnets", "magnet_maker", _day(41), "ship", {
            "batch": b["magnet_lot"], "mass_g": MAGNETS_G, **_to("oem"),
        }),
        Step("receive-magnets", "oem", _day(43), "receive", {
            "batch": b["magnet_lot"], "mass_g": MAGNETS_G,
        }),
    ]
    # fmt: on


def groups(chain: Sequence[Step]) -> list[list[Step]]:
    """Consecutive steps of the same persona: one bulk request, one export file."""
    out: list[list[Step]] = []
    for step in chain:
        if out and out[-1][0].persona == step.persona:
            out[-1].append(step)
        else:
            out.append([step])
    return out


def rfc3339(moment: datetime) -> str:
    """RFC 3339 UTC with whole seconds and Z, the form the demo's payloads carry."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def payload(step: Step, *, entry_id: str, start: datetime) -> dict[str, Any]:
    """The unsigned payload of ``step`` for a chain starting at ``start``."""
    org = BY_PERSONA[step.persona]
    return {
        "id": entry_id,
        "type": step.type,
        "org": org.slug,
        "facility": org.facility,
        "occurred_at": rfc3339(start + step.at),
        **json.loads(json.dumps(step.fields)),  # a deep copy: payloads never share lists
    }


def seed_entry_id(step: Step) -> str:
    """The deterministic payload id of a seeded step."""
    return str(uuid.uuid5(NAMESPACE, step.name))


def chain_start(now: datetime) -> datetime:
    """Midnight UTC CHAIN_AGE before ``now``: the start of a new chain."""
    return (now - CHAIN_AGE).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


# -- personas ---------------------------------------------------------------------------------


@dataclass
class Persona:
    """A demo organisation as its systems see it: facility, API user and signing key."""

    spec: DemoOrg
    org: Organisation
    facility: Facility
    user: User
    key: Ed25519PrivateKey
    key_file: Path

    @property
    def key_id(self) -> str:
        return key_id(public_key_raw(self.key))


def key_dir() -> Path:
    """Where the personas' private keys live: VAR_DIR/demo-keys (var/ is never committed)."""
    return Path(settings.VAR_DIR) / "demo-keys"


def _persona_key(directory: Path, slug: str) -> tuple[Ed25519PrivateKey, Path]:
    path = directory / f"{slug}.pem"
    if path.exists():
        return load_private_key_file(path), path
    key = generate_private_key()
    try:
        write_private_key_file(key, path)
    except FileExistsError:  # another seed_demo wrote it first; use theirs
        return load_private_key_file(path), path
    return key, path


def _organisation(spec: DemoOrg) -> tuple[Organisation, Facility]:
    org = Organisation.objects.filter(slug=spec.slug).first()
    if org is None:
        return create_organisation(
            slug=spec.slug,
            name=spec.name,
            role=spec.role,
            facility_code=spec.facility,
            country=spec.country,
            facility_name=spec.facility_name,
        )
    if org.role != spec.role:
        raise DemoError(
            f"Organisation {spec.slug!r} exists with role {org.role}, but the demo needs role "
            f"{spec.role}. Seed the demo into a fresh database."
        )
    facility, _ = Facility.objects.get_or_create(
        organisation=org,
        code=spec.facility,
        defaults={"name": spec.facility_name, "country": spec.country},
    )
    return org, facility


def _registered(org: Organisation, key: Ed25519PrivateKey, path: Path) -> None:
    raw = public_key_raw(key)
    known = SigningKey.objects.filter(key_id=key_id(raw)).first()
    if known is None:
        services.register_key(org, b64url_encode(raw), label="demo")
        return
    if known.organisation_id != org.pk:
        raise DemoError(f"The key in {path} is registered for {known.organisation.slug!r}, not {org.slug!r}.")
    if known.revoked_seq is not None:
        raise DemoError(
            f"The demo key in {path} was revoked at log seq {known.revoked_seq}. Move the file "
            "away and run seed_demo again to register a new key."
        )


def ensure_personas(directory: Path | None = None) -> dict[str, Persona]:
    """Every demo organisation with its facility, API user and a registered signing key.

    Creates what is missing; keys are read from (or written to) ``directory``.
    """
    directory = directory or key_dir()
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)  # private keys: owner only, like the files themselves
    personas = {}
    try:
        for spec in ORGS:
            org, facility = _organisation(spec)
            user, _ = member(org, spec.username)
            key, path = _persona_key(directory, spec.slug)
            _registered(org, key, path)
            personas[spec.persona] = Persona(spec, org, facility, user, key, path.resolve())
    except OnboardingError as exc:
        raise DemoError(str(exc)) from None
    return personas


# -- seeding ----------------------------------------------------------------------------------


@dataclass
class SeedResult:
    """What seed() did: the personas, and how many entries were new or replayed."""

    personas: dict[str, Persona]
    created: int
    replayed: int


def _seed_start(chain: Sequence[Step], now: datetime) -> datetime:
    # An existing seed fixes the start: recomputing it from "now" on another day would give
    # different payloads under the same ids (an id conflict instead of a replay).
    first = LogRecord.objects.filter(entry_id=seed_entry_id(chain[0])).first()
    if first is not None:
        return parse_occurred_at(first.payload["occurred_at"]) - chain[0].at
    return chain_start(now)


def submit_group(
    persona: Persona, group: Sequence[Step], start: datetime, ids: Callable[[Step], str]
) -> list[bool]:
    """Sign a group of steps with the persona's key and submit them as one bulk, through
    services.submit_entries (the API's path). Returns which were replayed."""
    envelopes = [make_envelope(persona.key, payload(s, entry_id=ids(s), start=start)) for s in group]
    try:
        result = services.submit_entries(envelopes, organisation=persona.org, bulk=True)
    except EntryRejected as exc:
        step = group[exc.index or 0]
        hint = (
            " The database holds a demo seeded from a different chain definition; seed into a fresh database."
            if exc.code in {"id-conflict", "batch-exists"}
            else ""
        )
        raise DemoError(
            f"Step {step.name!r} was refused: {exc.code} at {exc.pointer}: {exc.detail}{hint}"
        ) from exc
    return result.replayed


def seed(directory: Path | None = None, now: datetime | None = None) -> SeedResult:
    """Seed the demo chain, all or nothing; running it again changes nothing."""
    chain = steps()
    with transaction.atomic():
        personas = ensure_personas(directory)
        start = _seed_start(chain, now or datetime.now(UTC))
        replayed = []
        for group in groups(chain):
            replayed += submit_group(personas[group[0].persona], group, start, seed_entry_id)
    return SeedResult(personas, created=replayed.count(False), replayed=replayed.count(True))


def describe(personas: Mapping[str, Persona], base_url: str) -> dict[str, Any]:
    """The --json document: base URL, a fresh API token per persona, the batch ids.

    Tokens are stored hashed, so every call issues new ones (named "demo")."""
    described = {}
    for name, persona in personas.items():
        _, token = ApiToken.issue(persona.user, "demo")
        described[name] = {
            "org": persona.org.slug,
            "facility": persona.facility.code,
            "role": persona.org.role,
            "username": persona.user.username,
            "token": token,
            "key_file": str(persona.key_file),
            "key_id": persona.key_id,
        }
    return {"base_url": base_url, "personas": described, "batches": dict(BATCHES)}


# -- export -----------------------------------------------------------------------------------


def export_payloads(
    out_dir: Path, suffix: str, personas: Mapping[str, Persona], now: datetime | None = None
) -> list[Path]:
    """Write the chain as a new one (fresh uuid4 ids, batch ids ending in ``-suffix``) into
    numbered JSONL files of unsigned payloads, plus steps.sh to sign and submit them in order
    with the magledger client. Returns the JSONL files in order."""
    if not SUFFIX.fullmatch(suffix):
        raise DemoError(
            f"--suffix {suffix!r} must be 1-16 letters, digits, '-' or '_', starting with a letter or digit."
        )
    batches = {name: f"{bid}-{suffix}" for name, bid in BATCHES.items()}
    start = chain_start(now or datetime.now(UTC))
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for number, group in enumerate(groups(steps(batches, tag=f" ({suffix})")), 1):
        whats = "-".join(dict.fromkeys(s.what for s in group))
        path = out_dir / f"{number:02d}-{group[0].persona}-{whats}.jsonl"
        lines = [
            json.dumps(payload(s, entry_id=str(uuid.uuid4()), start=start), ensure_ascii=False) for s in group
        ]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        files.append(path)
    script = out_dir / "steps.sh"
    script.write_text(_steps_script(files, suffix, personas), encoding="utf-8")
    script.chmod(0o755)
    return files


def file_persona(path: Path) -> str:
    """The persona whose key signs an export file (``NN-<persona>-<what>.jsonl``)."""
    return path.name.split("-")[1]


def token_variable(persona: str) -> str:
    """The environment variable steps.sh reads a persona's API token from."""
    return f"TOKEN_{persona.upper()}"


def _steps_script(files: Sequence[Path], suffix: str, personas: Mapping[str, Persona]) -> str:
    used = list(dict.fromkeys(file_persona(f) for f in files))
    keys_dir = personas[used[0]].key_file.parent
    lines = [
        "#!/usr/bin/env bash",
        f"# Submit the exported demo chain (batch ids ending in -{suffix}) step by step with the",
        "# magledger client: each file is signed with its persona's key and submitted with its",
        "# persona's token, in order. Written by `manage.py seed_demo --export-payloads`; see",
        "# docs/demo.md. Tokens: `manage.py seed_demo --json` prints a fresh one per persona.",
        "#",
        "#   MAGLEDGER_URL=http://127.0.0.1:8000 \\",
        *(f"#   {token_variable(p)}=mlt_... \\" for p in used),
        "#   bash steps.sh",
        "#",
        "# Re-running is safe: payload ids are fixed in the files and Ed25519 signing is",
        "# deterministic, so entries already recorded come back with replayed: true.",
        "set -euo pipefail",
        'HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"',
        f'KEYS="${{MAGLEDGER_DEMO_KEYS:-{shlex.quote(str(keys_dir))}}}"',
        'MAGLEDGER="${MAGLEDGER:-magledger}"',
        ': "${MAGLEDGER_URL:?set MAGLEDGER_URL, e.g. http://127.0.0.1:8000}"',
        *(
            f': "${{{token_variable(p)}:?set {token_variable(p)} (seed_demo --json prints it)}}"'
            for p in used
        ),
        'mkdir -p "$HERE/signed"',
        "",
        "step() {  # step FILE KEY_FILE TOKEN",
        '  echo "== $1" >&2',
        '  "$MAGLEDGER" sign --key "$KEYS/$2" "$HERE/$1" > "$HERE/signed/$1"',
        '  "$MAGLEDGER" submit --url "$MAGLEDGER_URL" --token "$3" "$HERE/signed/$1"',
        "}",
        "",
    ]
    for path in files:
        persona = file_persona(path)
        key_name = personas[persona].key_file.name
        lines.append(f'step {shlex.quote(path.name)} {shlex.quote(key_name)} "${token_variable(persona)}"')
    return "\n".join(lines) + "\n"
