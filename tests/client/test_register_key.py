"""register-key: a key made with keygen becomes valid for the organisation and signs accepted entries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from accounts.models import SigningKey
from ledger.models import LogRecord
from tests.client.support import intake_payload, read_jsonl, run_cli
from tests.conftest import World


def test_a_registered_key_signs_an_accepted_entry(world: World, live_server: Any, tmp_path: Path) -> None:
    r = world.recycler
    key = tmp_path / "new.pem"
    made = json.loads(run_cli("keygen", "--out", str(key)).stdout)
    server = ["--url", live_server.url, "--token", r.token]

    # Signed with a key the server does not know yet: refused.
    payload = intake_payload(r)
    src = tmp_path / "payload.json"
    src.write_text(json.dumps(payload), encoding="utf-8")
    envelope = tmp_path / "envelope.json"
    envelope.write_text(run_cli("sign", "--key", str(key), str(src)).stdout, encoding="utf-8")
    early = run_cli("submit", *server, str(envelope))
    assert early.returncode == 1
    assert "unknown-key" in early.stderr

    registered = run_cli("register-key", *server, "--key", str(key), "--label", "erp-export")
    assert registered.returncode == 0, registered.stderr
    answer = json.loads(registered.stdout)
    assert answer["key_id"] == made["key_id"]
    assert answer["public_key"] == made["public_key"]
    assert (answer["org"], answer["label"], answer["valid"]) == (r.org.slug, "erp-export", True)
    assert SigningKey.objects.get(key_id=made["key_id"]).organisation == r.org

    accepted = run_cli("submit", *server, str(envelope))
    assert accepted.returncode == 0, accepted.stderr
    (receipt,) = read_jsonl(accepted.stdout)
    record = LogRecord.objects.get(seq=receipt["seq"])
    assert record.record["envelope"]["key_id"] == made["key_id"]

    twice = run_cli("register-key", *server, "--key", str(key))
    assert twice.returncode == 1
    assert "key-exists" in twice.stderr
