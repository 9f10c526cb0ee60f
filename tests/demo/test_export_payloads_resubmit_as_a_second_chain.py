"""seed_demo --export-payloads: files of valid payloads that, signed with the persona keys and
submitted through the API in order, are all accepted as a second chain."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from ledger import demo
from ledger.models import Batch, LogRecord
from ledger.payloads import validate_payload
from ledger.protocol.envelope import make_envelope
from ledger.protocol.keys import load_private_key_file
from tests.demo.conftest import run, seed_json


def export(directory: Path, *extra: str) -> list[Path]:
    run("seed_demo", "--export-payloads", str(directory), *extra)
    return sorted(directory.glob("*.jsonl"))


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@pytest.mark.django_db
def test_exported_payloads_are_valid_numbered_and_use_a_new_chain(tmp_path: Path) -> None:
    files = export(tmp_path / "out", "--suffix", "t2")

    assert [f.name[:3] for f in files] == [f"{n:02d}-" for n in range(1, len(files) + 1)]
    payloads = [p for f in files for p in read(f)]
    assert len(payloads) == len(demo.steps())
    for payload in payloads:
        validate_payload(payload)
    assert not LogRecord.objects.filter(entry_id__in=[p["id"] for p in payloads]).exists()
    batches = {p["batch"] for p in payloads if "batch" in p}
    assert batches and all(b.endswith("-t2") for b in batches)
    assert not Batch.objects.filter(id__in=batches).exists()
    for f in files:  # each file holds one persona's consecutive steps
        assert {p["org"] for p in read(f)} == {demo.BY_PERSONA[demo.file_persona(f)].slug}


@pytest.mark.django_db
def test_exported_chain_signed_and_submitted_in_order_is_accepted(tmp_path: Path) -> None:
    document = seed_json()
    personas = document["personas"]
    before = LogRecord.objects.count()
    files = export(tmp_path / "out", "--suffix", "t2")

    for path in files:
        persona = personas[demo.file_persona(path)]
        key = load_private_key_file(persona["key_file"])
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {persona['token']}")
        body = {"entries": [make_envelope(key, p) for p in read(path)]}
        response = client.post("/api/v1/entries/", body, format="json")
        assert response.status_code == 201, (path.name, response.content)
        assert not any(r["replayed"] for r in response.json()["receipts"]), path.name

    assert LogRecord.objects.count() == before + len(demo.steps())
    lot = Batch.objects.get(id=f"{demo.BATCHES['magnet_lot']}-t2")
    assert lot.custodian.slug == personas["oem"]["org"]
    assert lot.mass_g == demo.MAGNETS_G
    # The seeded chain is untouched.
    assert Batch.objects.get(id=demo.BATCHES["magnet_lot"]).remaining_g == demo.MAGNETS_G


@pytest.mark.django_db
def test_two_exports_without_suffix_do_not_collide(tmp_path: Path) -> None:
    first = {p["batch"] for f in export(tmp_path / "a") for p in read(f) if "batch" in p}
    second = {p["batch"] for f in export(tmp_path / "b") for p in read(f) if "batch" in p}
    assert first and second and not first & second


@pytest.mark.django_db
def test_a_malformed_suffix_is_refused_clearly(tmp_path: Path) -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--suffix"):
        run("seed_demo", "--export-payloads", str(tmp_path / "out"), "--suffix", "bad/suffix")
    assert not list((tmp_path / "out").glob("*.jsonl")) if (tmp_path / "out").exists() else True


@pytest.mark.django_db
def test_steps_script_is_valid_bash_naming_every_file_in_order(tmp_path: Path) -> None:
    files = export(tmp_path / "out", "--suffix", "t3")
    script = (tmp_path / "out" / "steps.sh").read_text()

    subprocess.run(["bash", "-n", str(tmp_path / "out" / "steps.sh")], check=True)
    positions = [script.index(f"step {f.name} ") for f in files]
    assert positions == sorted(positions)
    for f in files:
        assert demo.token_variable(demo.file_persona(f)) in script


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_steps_script_submits_the_export_with_the_magledger_client(live_server: Any, tmp_path: Path) -> None:
    """The documented path end to end: seed_demo --json, export, bash steps.sh with magledger."""
    magledger = Path(sys.executable).with_name("magledger")
    assert magledger.exists(), "the magledger client is installed with the package (pyproject scripts)"
    document = seed_json()
    export(tmp_path / "out", "--suffix", "live")
    env = {
        **os.environ,
        "MAGLEDGER_URL": live_server.url,
        "MAGLEDGER": str(magledger),
        **{demo.token_variable(name): p["token"] for name, p in document["personas"].items()},
    }

    done = subprocess.run(
        ["bash", str(tmp_path / "out" / "steps.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stderr
    receipts = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(receipts) == len(demo.steps())
    assert not any(r["replayed"] for r in receipts)
    assert Batch.objects.get(id=f"{demo.BATCHES['magnet_lot']}-live").custodian.slug == "voltmotor"
