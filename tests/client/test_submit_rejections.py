"""Refused submissions: exit 1, a readable account on stderr, nothing of the request written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.client.support import intake_payload, read_jsonl, record_count, run_cli, write_jsonl
from tests.conftest import World, new_batch_id


def test_an_overdraw_is_refused_and_nothing_is_written(
    world: World, live_server: Any, tmp_path: Path
) -> None:
    r = world.recycler
    batch = new_batch_id("evtb")
    r.submit_ok("intake", batch=batch, material="magnet_scrap", mass_g=500, origin="post_consumer")
    overdraw = r.sign(r.payload("write_off", batch=batch, mass_g=501, reason="disposal"))
    src = tmp_path / "write-off.json"
    src.write_text(json.dumps(overdraw), encoding="utf-8")
    before = record_count()

    result = run_cli("submit", "--url", live_server.url, "--token", r.token, str(src))

    assert result.returncode == 1
    assert result.stdout == ""
    assert "Overdraw" in result.stderr  # the title
    assert "code overdraw" in result.stderr
    assert "pointer: /payload/mass_g" in result.stderr
    assert "500 g remaining" in result.stderr  # the detail
    assert record_count() == before


def test_a_bad_signature_in_a_bulk_names_index_and_line_and_writes_nothing(
    world: World, live_server: Any, tmp_path: Path
) -> None:
    r = world.recycler
    envelopes = [r.sign(intake_payload(r)) for _ in range(4)]
    envelopes[2]["payload"]["mass_g"] += 1  # altered after signing
    src = write_jsonl(tmp_path / "envelopes.jsonl", envelopes)
    before = record_count()

    result = run_cli("submit", "--url", live_server.url, "--token", r.token, str(src))

    assert result.returncode == 1
    assert result.stdout == ""
    assert "code bad-signature" in result.stderr
    assert "pointer: /entries/2/signature" in result.stderr
    assert "index:   2 in chunk 1 of 1" in result.stderr
    assert f"{src} line 3" in result.stderr
    assert record_count() == before


def test_a_refusal_in_a_later_chunk_keeps_the_earlier_chunks_and_their_receipts(
    world: World, live_server: Any, tmp_path: Path
) -> None:
    r = world.recycler
    envelopes = [r.sign(intake_payload(r)) for _ in range(5)]
    envelopes[3]["payload"]["mass_g"] += 1
    src = write_jsonl(tmp_path / "envelopes.jsonl", envelopes)
    before = record_count()

    result = run_cli("submit", "--chunk-size", "2", "--url", live_server.url, "--token", r.token, str(src))

    assert result.returncode == 1
    assert [x["entry_id"] for x in read_jsonl(result.stdout)] == [e["payload"]["id"] for e in envelopes[:2]]
    assert "index:   1 in chunk 2 of 3, envelope 4 of 5" in result.stderr
    assert "nothing of chunk 2 of 3 (envelopes 3-4) was written" in result.stderr
    assert record_count() == before + 2

    # Fixing the file and submitting it again replays what was recorded and adds the rest.
    envelopes[3] = r.sign(envelopes[3]["payload"])
    write_jsonl(src, envelopes)
    retry = run_cli("submit", "--chunk-size", "2", "--url", live_server.url, "--token", r.token, str(src))
    assert retry.returncode == 0, retry.stderr
    assert [x["replayed"] for x in read_jsonl(retry.stdout)] == [True, True, False, False, False]
    assert record_count() == before + 5
