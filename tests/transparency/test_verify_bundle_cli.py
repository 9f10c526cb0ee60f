"""``magledger verify-bundle``: a bundle from the API verifies offline (without Django), and
every kind of tampering is detected with a message naming the seq and the check."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from ledger.logkey import log_private_key
from ledger.protocol.keys import generate_private_key
from ledger.protocol.note import sign_checkpoint, vkey
from tests.client.support import run_cli
from tests.conftest import World
from tests.transparency.support import SyntheticLog, build_pedigree, post_consumer_claims


@pytest.fixture
def bundle(world: World) -> dict[str, Any]:
    ids = build_pedigree(world)
    response = world.oem.client.get(f"/api/v1/batches/{ids.magnets}/bundle/")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


@pytest.fixture
def log_vkey(world: World) -> str:
    return str(APIClient().get("/api/v1/log/").json()["vkey"])


def _write(tmp_path: Path, document: Any, name: str = "bundle.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return str(path)


def _verify(path: str, *extra: str) -> Any:
    return run_cli("verify-bundle", *extra, path)


def _item(document: dict[str, Any], type_: str, **match: Any) -> dict[str, Any]:
    for item in document["records"]:
        payload = item["record"]["envelope"]["payload"]
        if payload["type"] == type_ and all(payload.get(k) == v for k, v in match.items()):
            return dict(item)
    raise AssertionError(f"no {type_} {match}")


def test_a_genuine_bundle_verifies_offline_and_shows_the_figures(
    bundle: dict[str, Any], log_vkey: str, tmp_path: Path
) -> None:
    result = _verify(_write(tmp_path, bundle), "--vkey", log_vkey)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "VERIFIED" in result.stdout
    assert f"{len(bundle['records'])} records" in result.stdout
    assert "custodian: motorwerk" in result.stdout
    assert "Dy: post-consumer 100.0 %, pre-consumer 0.0 %, primary 0.0 %" in result.stdout
    assert "trust on first use" not in result.stderr


def test_without_vkey_the_bundle_key_is_trusted_with_a_warning(
    bundle: dict[str, Any], tmp_path: Path
) -> None:
    result = _verify(_write(tmp_path, bundle))
    assert result.returncode == 0, result.stdout
    assert "warning: trust on first use" in result.stderr


def test_the_verifier_needs_no_django(bundle: dict[str, Any], log_vkey: str, tmp_path: Path) -> None:
    poisoned = tmp_path / "no-django" / "django"
    poisoned.mkdir(parents=True)
    (poisoned / "__init__.py").write_text(
        "raise ImportError('the offline verifier must not import Django')\n"
    )
    path = _write(tmp_path, bundle)
    result = run_cli("verify-bundle", "--vkey", log_vkey, path, env={"PYTHONPATH": str(poisoned.parent)})
    assert result.returncode == 0, result.stderr


def test_one_flipped_bit_in_a_payload_is_named(bundle: dict[str, Any], log_vkey: str, tmp_path: Path) -> None:
    tampered = copy.deepcopy(bundle)
    item = _item(tampered, "transform", process="sintering")
    output = item["record"]["envelope"]["payload"]["outputs"][0]
    output["mass_g"] ^= 1  # 33,000 g becomes 33,001 g
    seq = item["record"]["seq"]
    result = _verify(_write(tmp_path, tampered), "--vkey", log_vkey)
    assert result.returncode == 1
    assert "TAMPERED" in result.stdout
    assert f"seq {seq}: leaf-hash: expected leaf hash {item['leaf_hash'][:16]}" in result.stdout
    assert f"seq {seq}: signature: expected an Ed25519 signature by key" in result.stdout
    assert "got a signature that does not verify" in result.stdout


def test_reordered_records_are_named(bundle: dict[str, Any], log_vkey: str, tmp_path: Path) -> None:
    swapped = copy.deepcopy(bundle)
    records = swapped["records"]
    records[3], records[4] = records[4], records[3]
    result = _verify(_write(tmp_path, swapped), "--vkey", log_vkey)
    assert result.returncode == 1
    later = records[3]["record"]["seq"]
    earlier = records[4]["record"]["seq"]
    assert (
        f"seq {earlier}: order: expected records in ascending seq order, after seq {later}" in result.stdout
    )

    # Moving records to each other's positions in the log breaks their hashes and proofs.
    moved = copy.deepcopy(bundle)
    first, second = moved["records"][3]["record"], moved["records"][4]["record"]
    first["seq"], second["seq"] = second["seq"], first["seq"]
    result = _verify(_write(tmp_path, moved, "moved.json"), "--vkey", log_vkey)
    assert result.returncode == 1
    assert f"seq {first['seq']}: leaf-hash" in result.stdout
    assert f"seq {first['seq']}: inclusion: expected a proof to the checkpoint root" in result.stdout


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        (
            ("transform", {"process": "hpms"}),
            "completeness: expected the record that created batch 'hpms-pow",
        ),
        (("ship", {"to_org": "hpms"}), "custody: expected batch 'evtb-scrap"),
        (
            ("receive", {"org": "motorwerk"}),
            "bundle: custody: expected custodian 'magm' (from the records); got 'motorwerk' claimed",
        ),
        (("assay", {}), "bundle: figures: expected composition None (from the records)"),
        (("intake", {}), "completeness: expected the record that created batch 'evtb-motors"),
    ],
)
def test_a_dropped_record_is_named(
    bundle: dict[str, Any], log_vkey: str, tmp_path: Path, drop: tuple[str, dict[str, Any]], message: str
) -> None:
    type_, match = drop
    gone = _item(bundle, type_, **match)
    cut = copy.deepcopy(bundle)
    cut["records"] = [i for i in cut["records"] if i["record"]["seq"] != gone["record"]["seq"]]
    result = _verify(_write(tmp_path, cut), "--vkey", log_vkey)
    assert result.returncode == 1, result.stdout
    assert message in result.stdout


def test_a_checkpoint_signed_by_another_key_is_refused(
    bundle: dict[str, Any], log_vkey: str, tmp_path: Path
) -> None:
    forger = generate_private_key()
    origin = bundle["log"]["origin"]
    text = bundle["checkpoint"].split("\n\n")[0] + "\n"
    size, root = text.split("\n")[1], text.split("\n")[2]
    forged = copy.deepcopy(bundle)
    forged["checkpoint"] = sign_checkpoint(origin, int(size), base64.b64decode(root), forger)
    forged["log"]["vkey"] = vkey(origin, forger)

    refused = _verify(_write(tmp_path, forged), "--vkey", log_vkey)
    assert refused.returncode == 1
    assert "bundle: checkpoint-signature: expected a checkpoint signed by log key" in refused.stdout
    assert "no-known-signature" in refused.stdout
    # Trusting the key the bundle names is not enough either: the key records were signed by
    # the genuine log key, so no signer's key is known under the forger's.
    fooled = _verify(_write(tmp_path, forged, "forged.json"))
    assert fooled.returncode == 1
    assert "trust on first use" in fooled.stderr
    assert "key-validity: expected a key_registered record for key" in fooled.stdout


def test_a_checkpoint_resigned_over_another_root_fails_every_proof(
    bundle: dict[str, Any], log_vkey: str, tmp_path: Path, settings: Any
) -> None:
    size = int(bundle["checkpoint"].split("\n")[1])
    other = copy.deepcopy(bundle)
    other["checkpoint"] = sign_checkpoint(settings.LEDGER_LOG_ORIGIN, size, b"\x17" * 32, log_private_key())
    result = _verify(_write(tmp_path, other), "--vkey", log_vkey)
    assert result.returncode == 1
    assert "checkpoint-signature" not in result.stdout  # the log key really signed it
    for item in bundle["records"]:
        seq = item["record"]["seq"]
        assert f"seq {seq}: inclusion: expected a proof to the checkpoint root {'17' * 8}" in result.stdout


def test_a_signature_by_a_key_revoked_before_the_entry_is_named(tmp_path: Path) -> None:
    log = SyntheticLog()
    key = generate_private_key()
    log.register("evtb", key)
    log.entry(
        key, "evtb", "intake", batch="evtb-early", material="magnet_scrap", mass_g=10, origin="post_consumer"
    )
    log.revoke(key)
    late = log.entry(
        key, "evtb", "intake", batch="evtb-late", material="magnet_scrap", mass_g=10, origin="post_consumer"
    )
    genuine = log.bundle("evtb-early", post_consumer_claims("evtb-early", "evtb"), seqs=[0, 1, 2])
    ok = _verify(_write(tmp_path, genuine, "early.json"), "--vkey", log.vkey)
    assert ok.returncode == 0, ok.stdout

    crafted = log.bundle("evtb-late", post_consumer_claims("evtb-late", "evtb"))
    result = _verify(_write(tmp_path, crafted), "--vkey", log.vkey)
    assert result.returncode == 1
    kid = log.records[0]["envelope"]["payload"]["key_id"]
    assert (
        f"seq {late['seq']}: key-validity: expected key {kid[:16]}… not revoked before seq {late['seq']}; "
        "got revoked at seq 2"
    ) in result.stdout
    assert "TAMPERED: 1 failed check(s)" in result.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json at all", "not a JSON document"),
        ('{"format": "magnet-ledger/bundle/v9"}', "unsupported format 'magnet-ledger/bundle/v9'"),
        ('{"format": "magnet-ledger/bundle/v1", "batch": "x"}', "the bundle has no 'log'"),
        ("[1, 2]", "a bundle is a JSON object"),
    ],
)
def test_what_cannot_be_checked_exits_2(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "odd.json"
    path.write_text(content, encoding="utf-8")
    result = _verify(str(path))
    assert result.returncode == 2
    assert message in result.stderr
    missing = _verify(str(tmp_path / "absent.json"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_json_report(bundle: dict[str, Any], log_vkey: str, tmp_path: Path) -> None:
    tampered = copy.deepcopy(bundle)
    tampered["claims"]["origin"]["elements"]["Dy"]["post_consumer"] = 0.5
    result = _verify(_write(tmp_path, tampered), "--vkey", log_vkey, "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["verified"] is False
    assert report["failures"] == [
        {
            "seq": None,
            "check": "figures",
            "expected": "origin.elements.Dy.post_consumer = 1.0 (recomputed from the records)",
            "actual": "0.5 claimed",
        }
    ]
