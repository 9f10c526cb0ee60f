"""Shared helpers of the verifiable-log tests: a pedigree built through the API, the log's
leaves as stored, and synthetic logs built in pure Python (for bundles the service would
never produce, such as an entry signed with a key revoked before it)."""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.models import LogRecord
from ledger.origin import METHOD
from ledger.protocol.bundle import BUNDLE_FORMAT
from ledger.protocol.canonical import canonical_bytes
from ledger.protocol.envelope import b64url_encode, make_envelope
from ledger.protocol.hashing import ZERO_HASH_HEX, leaf_hash
from ledger.protocol.keys import generate_private_key, key_id, public_key_raw
from ledger.protocol.merkle import inclusion_proof, root_from_leaves
from ledger.protocol.note import sign_checkpoint, vkey
from tests.conftest import EV_MAGNET_PPM, World, new_batch_id


def stored_leaves() -> list[bytes]:
    """Every leaf hash of the log, in seq order, as the database holds them."""
    return [bytes.fromhex(h) for h in LogRecord.objects.order_by("seq").values_list("leaf_hash", flat=True)]


@dataclass
class Pedigree:
    """A magnet lot made from EV motors taken back, held by the OEM."""

    motors: str
    scrap: str
    powder: str
    magnets: str


def build_pedigree(world: World) -> Pedigree:
    """recycler: take-back, dismantling, ship -> processor: HPMS, ship -> maker: sintering
    with an assay, ship -> OEM: receive. Every step through the API."""
    r, p, m, o = world.recycler, world.processor, world.maker, world.oem
    ids = Pedigree(
        new_batch_id("evtb-motors"),
        new_batch_id("evtb-scrap"),
        new_batch_id("hpms-pow"),
        new_batch_id("magm-mag"),
    )
    r.submit_ok(
        "intake", batch=ids.motors, material="eol_product", mass_g=1_200_000, origin="post_consumer", units=20
    )
    r.submit_ok(
        "transform",
        process="dismantling",
        inputs=[{"batch": ids.motors, "mass_g": 1_200_000}],
        outputs=[
            {"batch": ids.scrap, "material": "magnet_scrap", "mass_g": 36_000, "composition": EV_MAGNET_PPM}
        ],
        losses=[{"kind": "steel_and_copper", "mass_g": 1_164_000}],
    )
    r.submit_ok("ship", batch=ids.scrap, mass_g=36_000, to_org=p.org.slug)
    p.submit_ok("receive", batch=ids.scrap, mass_g=35_900)
    p.submit_ok(
        "transform",
        process="hpms",
        inputs=[{"batch": ids.scrap, "mass_g": 35_900}],
        outputs=[{"batch": ids.powder, "material": "alloy_powder", "mass_g": 35_000}],
        losses=[{"kind": "dust", "mass_g": 900}],
    )
    p.submit_ok("ship", batch=ids.powder, mass_g=35_000, to_org=m.org.slug)
    m.submit_ok("receive", batch=ids.powder, mass_g=35_000)
    m.submit_ok(
        "transform",
        process="sintering",
        inputs=[{"batch": ids.powder, "mass_g": 35_000}],
        outputs=[{"batch": ids.magnets, "material": "magnet", "mass_g": 33_000}],
        losses=[{"kind": "machining_swarf", "mass_g": 2_000}],
    )
    m.submit_ok(
        "assay",
        batch=ids.magnets,
        composition=EV_MAGNET_PPM,
        lab="magm-lab",
        method="icp_oes",
        certificate_sha256="ab" * 32,
    )
    m.submit_ok("ship", batch=ids.magnets, mass_g=33_000, to_org=o.org.slug)
    o.submit_ok("receive", batch=ids.magnets, mass_g=33_000)
    return ids


# -- synthetic logs ----------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class SyntheticLog:
    """A log built record by record in memory, signed with its own log key: whatever a
    test needs, including histories the service refuses to write."""

    origin: str = "synthetic.example/log"
    log_key: Ed25519PrivateKey = field(default_factory=generate_private_key)
    records: list[dict[str, Any]] = field(default_factory=list)
    leaves: list[bytes] = field(default_factory=list)
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def vkey(self) -> str:
        return vkey(self.origin, self.log_key)

    def _append(self, envelope: dict[str, Any]) -> dict[str, Any]:
        seq = len(self.records)
        record = {
            "seq": seq,
            "recorded_at": _now(),
            "prev": self.leaves[-1].hex() if self.leaves else ZERO_HASH_HEX,
            "envelope": envelope,
        }
        self.records.append(record)
        self.leaves.append(leaf_hash(canonical_bytes(record)))
        return record

    def register(self, org: str, key: Ed25519PrivateKey) -> dict[str, Any]:
        raw = public_key_raw(key)
        record = self._append(
            make_envelope(
                self.log_key,
                {
                    "id": str(uuid.uuid4()),
                    "type": "key_registered",
                    "org": org,
                    "occurred_at": "2025-01-01T00:00:00Z",
                    "key_id": key_id(raw),
                    "public_key": b64url_encode(raw),
                    "algorithm": "ed25519",
                },
            )
        )
        self.keys[key_id(raw)] = {
            "key_id": key_id(raw),
            "org": org,
            "public_key": b64url_encode(raw),
            "registered_seq": record["seq"],
            "revoked_seq": None,
        }
        return record

    def revoke(self, key: Ed25519PrivateKey) -> dict[str, Any]:
        kid = key_id(public_key_raw(key))
        record = self._append(
            make_envelope(
                self.log_key,
                {
                    "id": str(uuid.uuid4()),
                    "type": "key_revoked",
                    "org": self.keys[kid]["org"],
                    "occurred_at": "2025-01-01T00:00:00Z",
                    "key_id": kid,
                    "reason": "compromised",
                },
            )
        )
        self.keys[kid]["revoked_seq"] = record["seq"]
        return record

    def entry(self, key: Ed25519PrivateKey, org: str, type_: str, **fields: Any) -> dict[str, Any]:
        payload = {
            "id": str(uuid.uuid4()),
            "type": type_,
            "org": org,
            "facility": f"{org}-site",
            "occurred_at": "2025-01-01T00:00:00Z",
            **fields,
        }
        return self._append(make_envelope(key, payload))

    def checkpoint(self, size: int | None = None, key: Ed25519PrivateKey | None = None) -> str:
        size = len(self.leaves) if size is None else size
        return sign_checkpoint(self.origin, size, root_from_leaves(self.leaves[:size]), key or self.log_key)

    def bundle(self, batch: str, claims: dict[str, Any], seqs: list[int] | None = None) -> dict[str, Any]:
        """A bundle over ``seqs`` (default: every record) against a checkpoint of the whole log."""
        size = len(self.leaves)
        chosen = range(size) if seqs is None else seqs
        return {
            "format": BUNDLE_FORMAT,
            "batch": batch,
            "generated_at": "2025-01-01T00:00:00Z",
            "log": {
                "origin": self.origin,
                "vkey": self.vkey,
                "log_key_id": key_id(public_key_raw(self.log_key)),
            },
            "checkpoint": self.checkpoint(),
            "records": [
                {
                    "record": copy.deepcopy(self.records[s]),
                    "leaf_hash": self.leaves[s].hex(),
                    "proof": [h.hex() for h in inclusion_proof(self.leaves, s, size)],
                }
                for s in chosen
            ],
            "keys": [dict(k) for k in self.keys.values()],
            "claims": claims,
        }


def post_consumer_claims(batch: str, org: str, composition: dict[str, int] | None = None) -> dict[str, Any]:
    """The claims of a batch that entered the chain as post-consumer material and stayed there."""
    return {
        "method": METHOD.name,
        "batch": batch,
        "material": "magnet_scrap",
        "custodian": org,
        "composition": composition,
        "origin": METHOD.intake("post_consumer"),
    }
