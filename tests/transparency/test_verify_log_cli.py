"""``magledger verify-log`` against a live server: a genuine log verifies and the state file
records its checkpoint; a log rewritten between two runs is caught as inconsistent with the
saved checkpoint; a token that does not see everything, or no server, cannot check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.db import connection

from ledger import transparency
from ledger.models import Checkpoint, LogRecord, MerkleNode
from ledger.protocol.envelope import record_bytes
from ledger.protocol.hashing import leaf_hash
from tests.client.support import run_cli
from tests.conftest import World, new_batch_id
from tests.transparency.support import build_pedigree


def _verify_log(url: str, token: str, state: Path, *extra: str) -> Any:
    return run_cli("verify-log", url, "--token", token, "--state", str(state), *extra)


def _rewrite_history(from_seq: int) -> None:
    """What an operator with database access could do: move one record's recorded_at (not
    covered by the client's signature), re-chain every later record, rebuild the tree and
    sign a new checkpoint. Every record still verifies on its own; only history differs."""
    records = list(LogRecord.objects.filter(seq__gte=from_seq).order_by("seq"))
    prev = LogRecord.objects.get(seq=from_seq - 1).leaf_hash
    rows = []
    for record in records:
        body = record.record
        stamp = body["recorded_at"]
        if record.seq == from_seq:
            stamp = "2020-01-01T00:00:00.000000Z"
        envelope = body["envelope"]
        payload_bytes = json.dumps(
            envelope["payload"], sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
        data = record_bytes(record.seq, stamp, prev, envelope["key_id"], payload_bytes, envelope["signature"])
        leaf = leaf_hash(data).hex()
        rows.append((data.decode("utf-8"), leaf, prev, record.seq))
        prev = leaf
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE ledger_logrecord DISABLE TRIGGER ledger_logrecord_append_only")
        try:
            cursor.executemany(
                "UPDATE ledger_logrecord SET canonical = %s, leaf_hash = %s, prev = %s WHERE seq = %s", rows
            )
        finally:
            if connection.vendor == "postgresql":
                cursor.execute("ALTER TABLE ledger_logrecord ENABLE TRIGGER ledger_logrecord_append_only")
    MerkleNode.objects.all().delete()
    Checkpoint.objects.all().delete()
    transparency.integrate_and_publish()


def test_a_genuine_log_verifies_and_then_only_grows(world: World, live_server: Any, tmp_path: Path) -> None:
    build_pedigree(world)
    transparency.integrate_and_publish()  # beat's job; explicit so that CI (no eager tasks) agrees
    state = tmp_path / "state.json"
    first = _verify_log(live_server.url, world.auditor.token, state)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "VERIFIED" in first.stdout
    assert "trust on first use" in first.stderr
    saved = json.loads(state.read_text())
    latest = transparency.latest_checkpoint()
    assert latest is not None
    assert (saved["size"], saved["root"], saved["checkpoint"]) == (latest.size, latest.root, latest.note)
    assert latest.size == LogRecord.objects.count()

    world.recycler.submit_ok(
        "intake", batch=new_batch_id("evtb"), material="swarf", mass_g=9, origin="pre_consumer"
    )
    transparency.integrate_and_publish()
    second = _verify_log(live_server.url, world.auditor.token, state)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"consistent with the checkpoint of {saved['size']} saved by the previous run" in second.stdout
    assert "trust on first use" not in second.stderr  # the key pinned in the state file is used
    assert json.loads(state.read_text())["size"] == saved["size"] + 1


def test_a_log_rewritten_between_two_runs_is_inconsistent_with_the_saved_checkpoint(
    world: World, live_server: Any, tmp_path: Path
) -> None:
    build_pedigree(world)
    transparency.integrate_and_publish()
    state = tmp_path / "state.json"
    assert _verify_log(live_server.url, world.auditor.token, state).returncode == 0
    saved = state.read_text()
    size = json.loads(saved)["size"]

    _rewrite_history(from_seq=8)
    again = _verify_log(live_server.url, world.auditor.token, state)
    assert again.returncode == 1, again.stdout + again.stderr
    assert "TAMPERED" in again.stdout
    assert (
        f"seq {size - 1}: consistency: expected the first {size} records to hash to the saved root "
        f"{json.loads(saved)['root']}"
    ) in again.stdout
    assert "the log was rewritten since the last run" in again.stdout
    assert (
        f"log: consistency: expected a proof that checkpoint {size} extends the saved checkpoint {size}"
        in (again.stdout)
    )
    assert state.read_text() == saved  # the evidence is kept

    fresh = _verify_log(live_server.url, world.auditor.token, tmp_path / "fresh.json")
    assert fresh.returncode == 0, fresh.stdout  # on its own the rewritten log is coherent


def test_a_record_changed_behind_the_checkpoint_fails_its_leaf_and_the_root(
    world: World, live_server: Any, tmp_path: Path
) -> None:
    build_pedigree(world)
    transparency.integrate_and_publish()
    record = LogRecord.objects.get(seq=9)
    changed = record.canonical.replace('"mass_g":35900', '"mass_g":35990')
    assert changed != record.canonical
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE ledger_logrecord DISABLE TRIGGER ledger_logrecord_append_only")
        cursor.execute("UPDATE ledger_logrecord SET canonical = %s WHERE seq = 9", [changed])
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE ledger_logrecord ENABLE TRIGGER ledger_logrecord_append_only")
    result = _verify_log(live_server.url, world.auditor.token, tmp_path / "state.json")
    assert result.returncode == 1, result.stdout
    assert "seq 9: leaf-hash: expected leaf hash" in result.stdout
    assert "seq 9: signature:" in result.stdout
    assert "seq 10: chain: expected prev = the leaf hash of seq 9" in result.stdout
    assert "log: root: expected checkpoint root" in result.stdout
    assert not (tmp_path / "state.json").exists()


def test_what_cannot_be_checked_exits_2(world: World, live_server: Any, tmp_path: Path) -> None:
    build_pedigree(world)
    transparency.integrate_and_publish()
    partial = _verify_log(live_server.url, world.maker.token, tmp_path / "a.json")
    assert partial.returncode == 2
    assert "does not see the whole log (verify-log needs an auditor's token)" in partial.stderr

    nobody = _verify_log("http://127.0.0.1:9", world.auditor.token, tmp_path / "b.json", "--retries", "1")
    assert nobody.returncode == 2
    assert "could not check" in nobody.stderr

    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    unreadable = _verify_log(live_server.url, world.auditor.token, broken)
    assert unreadable.returncode == 2
    assert "cannot read the state file" in unreadable.stderr
