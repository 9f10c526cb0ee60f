"""Bulk submission: JSONL of many envelopes in chunks of at most 1,000, in order, gapless."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ledger.models import LogRecord
from tests.client.support import intake_payload, key_file, read_jsonl, record_count, run_cli, write_jsonl
from tests.conftest import World


def test_1500_intakes_go_in_two_chunks_with_1500_gapless_receipts(
    world: World, live_server: Any, tmp_path: Path
) -> None:
    r = world.recycler
    payloads = [intake_payload(r, mass_g=1_000 + i) for i in range(1_500)]
    src = write_jsonl(tmp_path / "intakes.jsonl", payloads)
    key = key_file(r.key, tmp_path / "k.pem")
    signed = run_cli("sign", "--key", str(key), str(src))
    assert signed.returncode == 0, signed.stderr
    envelopes = tmp_path / "intakes.signed.jsonl"
    envelopes.write_text(signed.stdout, encoding="utf-8")
    before = record_count()

    result = run_cli("submit", "-v", "--url", live_server.url, "--token", r.token, str(envelopes))

    assert result.returncode == 0, result.stderr
    assert "chunk 1 of 2: 1000 envelope(s) recorded" in result.stderr
    assert "chunk 2 of 2: 500 envelope(s) recorded" in result.stderr
    receipts = read_jsonl(result.stdout)
    assert len(receipts) == 1_500
    assert [x["entry_id"] for x in receipts] == [p["id"] for p in payloads]  # file order kept
    seqs = [x["seq"] for x in receipts]
    assert seqs == list(range(seqs[0], seqs[0] + 1_500))  # gapless
    assert not any(x["replayed"] for x in receipts)
    assert record_count() == before + 1_500
    stored = dict(LogRecord.objects.filter(seq__in=seqs).values_list("seq", "leaf_hash"))
    assert all(stored[x["seq"]] == x["leaf_hash"] for x in receipts)


def test_a_json_array_is_submitted_in_chunks_of_the_chosen_size(
    world: World, live_server: Any, tmp_path: Path
) -> None:
    r = world.recycler
    envelopes = [r.sign(intake_payload(r)) for _ in range(5)]
    src = tmp_path / "envelopes.json"
    src.write_text(json.dumps(envelopes, indent=1), encoding="utf-8")
    result = run_cli(
        "submit", "-v", "--chunk-size", "2", "--url", live_server.url, "--token", r.token, str(src)
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("envelope(s) recorded") == 3
    assert [x["entry_id"] for x in read_jsonl(result.stdout)] == [e["payload"]["id"] for e in envelopes]
