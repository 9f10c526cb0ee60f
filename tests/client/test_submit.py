"""submit against a live server: receipts, idempotent resubmission, credentials from the environment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from ledger.models import LogRecord
from tests.client.support import intake_payload, key_file, read_jsonl, record_count, run_cli
from tests.conftest import Persona, World

RECEIPT_FIELDS = {"seq", "leaf_hash", "entry_id", "type", "replayed"}


def signed_file(persona: Persona, tmp_path: Path, payload: dict[str, Any]) -> Path:
    """Sign ``payload`` with the CLI, as a user would, into ``tmp_path/envelope.json``."""
    src = tmp_path / "payload.json"
    src.write_text(json.dumps(payload), encoding="utf-8")
    key = key_file(persona.key, tmp_path / f"{persona.org.slug}.pem")
    signed = run_cli("sign", "--key", str(key), str(src))
    assert signed.returncode == 0, signed.stderr
    out = tmp_path / "envelope.json"
    out.write_text(signed.stdout, encoding="utf-8")
    return out


def test_one_envelope_gets_a_receipt_and_is_readable(world: World, live_server: Any, tmp_path: Path) -> None:
    r = world.recycler
    payload = intake_payload(r, mass_g=36_000)
    envelope = signed_file(r, tmp_path, payload)
    result = run_cli("submit", "--url", live_server.url, "--token", r.token, str(envelope))
    assert result.returncode == 0, result.stderr
    (receipt,) = read_jsonl(result.stdout)
    assert set(receipt) == RECEIPT_FIELDS
    assert receipt["entry_id"] == payload["id"]
    assert receipt["type"] == "intake"
    assert receipt["replayed"] is False
    stored = LogRecord.objects.get(entry_id=payload["id"])
    assert (stored.seq, stored.leaf_hash) == (receipt["seq"], receipt["leaf_hash"])
    read = httpx.get(
        f"{live_server.url}/api/v1/entries/{receipt['seq']}/",
        headers={"Authorization": f"Token {r.token}"},
    )
    assert read.status_code == 200
    assert read.json()["record"]["envelope"] == json.loads(envelope.read_text())
    assert read.json()["leaf_hash"] == receipt["leaf_hash"]


def test_submitting_the_same_file_again_is_replayed_with_the_same_seq(
    world: World, live_server: Any, tmp_path: Path
) -> None:
    r = world.recycler
    envelope = signed_file(r, tmp_path, intake_payload(r))
    first = run_cli("submit", "--url", live_server.url, "--token", r.token, str(envelope))
    assert first.returncode == 0, first.stderr
    count = record_count()
    again = run_cli("submit", "--url", live_server.url, "--token", r.token, str(envelope))
    assert again.returncode == 0, again.stderr
    (one,), (two,) = read_jsonl(first.stdout), read_jsonl(again.stdout)
    assert two["replayed"] is True
    assert (two["seq"], two["leaf_hash"], two["entry_id"]) == (one["seq"], one["leaf_hash"], one["entry_id"])
    assert record_count() == count


def test_url_and_token_come_from_the_environment(world: World, live_server: Any, tmp_path: Path) -> None:
    r = world.recycler
    envelope = signed_file(r, tmp_path, intake_payload(r))
    result = run_cli(
        "submit", str(envelope), env={"MAGLEDGER_URL": live_server.url + "/", "MAGLEDGER_TOKEN": r.token}
    )
    assert result.returncode == 0, result.stderr
    assert read_jsonl(result.stdout)[0]["replayed"] is False
    missing = run_cli("submit", str(envelope), env={"MAGLEDGER_URL": live_server.url})
    assert missing.returncode == 2
    assert "MAGLEDGER_TOKEN" in missing.stderr


def test_a_wrong_token_is_refused_with_exit_1(world: World, live_server: Any, tmp_path: Path) -> None:
    r = world.recycler
    envelope = signed_file(r, tmp_path, intake_payload(r))
    count = record_count()
    result = run_cli("submit", "--url", live_server.url, "--token", "not-a-token", str(envelope))
    assert result.returncode == 1
    assert "HTTP 401" in result.stderr
    assert result.stdout == ""
    assert record_count() == count


def test_an_unsigned_payload_is_caught_before_sending(world: World, live_server: Any, tmp_path: Path) -> None:
    src = tmp_path / "payload.json"
    src.write_text(json.dumps(intake_payload(world.recycler)), encoding="utf-8")
    result = run_cli("submit", "--url", live_server.url, "--token", world.recycler.token, str(src))
    assert result.returncode == 2
    assert "magledger sign" in result.stderr
