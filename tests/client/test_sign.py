"""sign turns payloads (JSON, JSONL, stdin) into envelopes that verify."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.protocol.envelope import verify_envelope
from ledger.protocol.keys import generate_private_key
from tests.client.support import key_file, read_jsonl, run_cli, write_jsonl


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return generate_private_key()


def payload(**fields: object) -> dict[str, object]:
    body: dict[str, object] = {
        "id": str(uuid.uuid4()),
        "type": "intake",
        "org": "evtb",
        "facility": "evtb-site",
        "occurred_at": "2026-01-02T03:04:05Z",
        "batch": f"evtb-{uuid.uuid4().hex[:8]}",
        "material": "magnet_scrap",
        "mass_g": 1234,
        "origin": "post_consumer",
    }
    body.update(fields)
    return body


def test_sign_json_prints_one_envelope_that_verifies(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    body = payload(note="Dy-rich swarf, 12 µm")
    src = tmp_path / "p.json"
    src.write_text(json.dumps(body, indent=2), encoding="utf-8")
    result = run_cli("sign", "--key", str(key_file(key, tmp_path / "k.pem")), str(src))
    assert result.returncode == 0, result.stderr
    envelope = json.loads(result.stdout)  # exactly one JSON document
    assert envelope["payload"] == body
    verify_envelope(envelope, key.public_key())


def test_sign_jsonl_prints_one_envelope_per_line_in_order(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    bodies = [payload(mass_g=n) for n in (1, 2, 3)]
    src = write_jsonl(tmp_path / "p.jsonl", bodies)
    result = run_cli("sign", "--key", str(key_file(key, tmp_path / "k.pem")), str(src))
    assert result.returncode == 0, result.stderr
    envelopes = read_jsonl(result.stdout)
    assert [e["payload"] for e in envelopes] == bodies
    for envelope in envelopes:
        verify_envelope(envelope, key.public_key())


def test_sign_reads_stdin(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    bodies = [payload(), payload()]
    stdin = "".join(json.dumps(b) + "\n" for b in bodies)
    result = run_cli("sign", "--key", str(key_file(key, tmp_path / "k.pem")), "-", stdin=stdin)
    assert result.returncode == 0, result.stderr
    assert [e["payload"]["id"] for e in read_jsonl(result.stdout)] == [b["id"] for b in bodies]


def test_sign_without_an_id_fails_and_names_the_idempotency_key(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    body = payload()
    del body["id"]
    src = write_jsonl(tmp_path / "p.jsonl", [payload(), body])
    result = run_cli("sign", "--key", str(key_file(key, tmp_path / "k.pem")), str(src))
    assert result.returncode == 2
    assert result.stdout == ""  # nothing half-signed
    assert "line 2" in result.stderr
    assert "idempotency" in result.stderr
    assert "--new-id" in result.stderr


def test_new_id_and_now_fill_only_what_is_missing(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    kept = payload()
    bare = payload()
    del bare["id"], bare["occurred_at"]
    src = write_jsonl(tmp_path / "p.jsonl", [kept, bare])
    result = run_cli("sign", "--key", str(key_file(key, tmp_path / "k.pem")), "--new-id", "--now", str(src))
    assert result.returncode == 0, result.stderr
    first, second = (e["payload"] for e in read_jsonl(result.stdout))
    assert first == kept
    assert uuid.UUID(second["id"]).version == 4
    assert str(uuid.UUID(second["id"])) == second["id"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", second["occurred_at"])


def test_a_malformed_line_is_named_and_nothing_is_printed(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    src = tmp_path / "p.jsonl"
    src.write_text(json.dumps(payload()) + "\n" + '{"id": "x", "id": "y"}\n', encoding="utf-8")
    result = run_cli("sign", "--key", str(key_file(key, tmp_path / "k.pem")), str(src))
    assert result.returncode == 2
    assert result.stdout == ""
    assert "line 2" in result.stderr and "twice" in result.stderr


def test_unreadable_key_or_file_is_a_usage_error(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    src = write_jsonl(tmp_path / "p.jsonl", [payload()])
    assert run_cli("sign", "--key", str(tmp_path / "missing.pem"), str(src)).returncode == 2
    missing = run_cli("sign", "--key", str(key_file(key, tmp_path / "k.pem")), str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr
