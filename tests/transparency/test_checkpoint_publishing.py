"""Publishing checkpoints: the signed root is RFC 9162 over the stored leaves, publishing is
idempotent, safe when concurrent, refuses a corrupted tree, and runs by task, command,
HTTP and (embedded mode) after each commit."""

from __future__ import annotations

import itertools
import threading
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from rest_framework.test import APIClient

from ledger import transparency
from ledger.celery import app as celery_app
from ledger.models import Checkpoint, LogRecord, MerkleNode
from ledger.protocol.merkle import CompactRange, root_from_leaves, verify_consistency
from ledger.protocol.note import verify_checkpoint
from ledger.tasks import publish_checkpoint
from tests.conftest import World, need_service, new_batch_id
from tests.transparency.support import stored_leaves


def _intakes(world: World, count: int) -> None:
    r = world.recycler
    envelopes = [
        r.sign(
            r.payload(
                "intake",
                batch=new_batch_id("evtb-lot"),
                material="magnet_scrap",
                mass_g=1000 + i,
                origin="post_consumer",
            )
        )
        for i in range(count)
    ]
    response = r.client.post("/api/v1/entries/", {"entries": envelopes}, format="json")
    assert response.status_code == 201, response.json()


def _vkey() -> str:
    body: dict[str, Any] = APIClient().get("/api/v1/log/").json()
    return str(body["vkey"])


def test_the_checkpoint_signs_the_rfc9162_root_of_the_stored_leaves(world: World, settings: Any) -> None:
    published = transparency.integrate_and_publish()
    assert published is not None and published.created
    leaves = stored_leaves()
    checkpoint = published.checkpoint
    assert checkpoint.size == len(leaves) == LogRecord.objects.count()
    assert checkpoint.root == root_from_leaves(leaves).hex()
    body = verify_checkpoint(checkpoint.note, [_vkey()], origin=settings.LEDGER_LOG_ORIGIN)
    assert (body.size, body.root.hex()) == (checkpoint.size, checkpoint.root)

    served = APIClient().get("/api/v1/log/checkpoint/")
    assert served.status_code == 200
    assert served["Content-Type"] == "text/plain; charset=utf-8"
    assert served.content.decode("utf-8") == checkpoint.note
    assert APIClient().get("/api/v1/log/").json()["checkpoint_size"] == checkpoint.size


def test_every_perfect_node_is_stored_once_with_its_hash(world: World) -> None:
    for count in (3, 1, 9, 4):
        _intakes(world, count)
        transparency.integrate_and_publish()
    leaves = stored_leaves()
    reference = CompactRange()
    expected = {}
    for leaf in leaves:
        for node in reference.append(leaf)[1:]:
            expected[(node.level, node.index)] = node.hash.hex()
    stored = {(n.level, n.index): n.hash for n in MerkleNode.objects.all()}
    assert stored == expected
    # n leaves have n - popcount(n) perfect nodes above them.
    assert len(stored) == len(leaves) - len(leaves).bit_count()


def test_publishing_again_without_growth_changes_nothing(world: World) -> None:
    first = transparency.integrate_and_publish()
    assert first is not None and first.created
    nodes = MerkleNode.objects.count()
    again = transparency.integrate_and_publish()
    assert again is not None and not again.created
    assert again.checkpoint.pk == first.checkpoint.pk
    assert Checkpoint.objects.count() == 1
    assert MerkleNode.objects.count() == nodes


def test_an_empty_log_has_no_checkpoint(db: None) -> None:
    assert transparency.integrate_and_publish() is None
    response = APIClient().get("/api/v1/log/checkpoint/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "no-checkpoint"
    assert APIClient().get("/api/v1/log/").json()["checkpoint_size"] is None


def test_every_checkpoint_is_kept_and_each_extends_the_previous(world: World) -> None:
    sizes = []
    for count in (2, 5, 1, 8):
        _intakes(world, count)
        published = transparency.integrate_and_publish()
        assert published is not None
        sizes.append(published.checkpoint.size)
    checkpoints = list(Checkpoint.objects.order_by("size"))
    assert [c.size for c in checkpoints] == sizes
    leaves = stored_leaves()
    for older, newer in itertools.pairwise(checkpoints):
        proof = transparency.consistency_proof(older.size, newer.size)
        verify_consistency(
            older.size, newer.size, bytes.fromhex(older.root), bytes.fromhex(newer.root), proof.proof
        )
        assert newer.root == root_from_leaves(leaves[: newer.size]).hex()


def test_a_corrupted_store_is_refused_and_nothing_is_signed(world: World) -> None:
    _intakes(world, 5)
    transparency.integrate_and_publish()
    _intakes(world, 3)
    node = MerkleNode.objects.order_by("-level").first()
    assert node is not None
    node.hash = "00" * 32
    node.save(update_fields=["hash"])
    with pytest.raises(transparency.TreeCorrupted, match="refusing to sign"):
        transparency.integrate_and_publish()
    assert Checkpoint.objects.count() == 1


@pytest.mark.postgres
def test_concurrent_publishers_sign_one_consistent_checkpoint(
    transactional_db: None, world: World, settings: Any
) -> None:
    need_service("PostgreSQL", connection.vendor == "postgresql")
    settings.LEDGER_CHECKPOINT_ON_COMMIT = False  # the racing publishers below do it
    _intakes(world, 40)
    barrier = threading.Barrier(4)
    results: list[Any] = []

    def publish() -> None:
        try:
            barrier.wait()
            results.append(transparency.integrate_and_publish())
        except Exception as exc:  # surfaced by the assertion below
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=publish) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(isinstance(r, transparency.Published) for r in results), results
    assert sum(r.created for r in results) == 1
    leaves = stored_leaves()
    (checkpoint,) = Checkpoint.objects.all()
    assert (checkpoint.size, checkpoint.root) == (len(leaves), root_from_leaves(leaves).hex())
    assert MerkleNode.objects.count() == len(leaves) - len(leaves).bit_count()


def test_the_task_the_command_and_beat_publish(world: World) -> None:
    assert "ledger.publish_checkpoint" in celery_app.tasks
    schedule = celery_app.conf.beat_schedule
    assert any(e["task"] == "ledger.publish_checkpoint" and e["schedule"] <= 60 for e in schedule.values())
    size = publish_checkpoint.apply().get()  # the task as a worker runs it
    assert size == LogRecord.objects.count()

    _intakes(world, 2)
    out = StringIO()
    call_command("publish_checkpoint", stdout=out)
    assert f"Published checkpoint {size + 2} root" in out.getvalue()
    out = StringIO()
    call_command("publish_checkpoint", stdout=out)
    assert f"has not grown since checkpoint {size + 2}" in out.getvalue()


def test_only_auditors_publish_on_demand(world: World) -> None:
    anonymous = APIClient().post("/api/v1/log/checkpoint/")
    assert anonymous.status_code == 401
    forbidden = world.maker.client.post("/api/v1/log/checkpoint/")
    assert forbidden.status_code == 403
    assert forbidden["Content-Type"] == "application/problem+json"
    assert not Checkpoint.objects.exists()

    created = world.auditor.client.post("/api/v1/log/checkpoint/")
    assert created.status_code == 201
    assert created.json()["size"] == LogRecord.objects.count()
    unchanged = world.auditor.client.post("/api/v1/log/checkpoint/")
    assert unchanged.status_code == 200
    assert unchanged.json()["checkpoint"] == created.json()["checkpoint"]


def test_embedded_mode_publishes_after_each_commit(
    world: World, settings: Any, django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.LEDGER_CHECKPOINT_ON_COMMIT = True
    # The embedded mode, even under CI (the Django namespace prefixes Celery setting keys).
    monkeypatch.setitem(celery_app.conf, "CELERY_TASK_ALWAYS_EAGER", True)
    with django_capture_on_commit_callbacks(execute=True):
        receipt = world.recycler.submit_ok(
            "intake", batch="evtb-on-commit", material="magnet_scrap", mass_g=10, origin="post_consumer"
        )
    latest = transparency.latest_checkpoint()
    assert latest is not None and latest.size == receipt["seq"] + 1


def test_production_mode_leaves_publishing_to_beat(
    world: World, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.LEDGER_CHECKPOINT_ON_COMMIT = False
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        world.recycler.submit_ok(
            "intake", batch="evtb-no-commit-hook", material="magnet_scrap", mass_g=10, origin="post_consumer"
        )
    assert not Checkpoint.objects.exists()
    assert all("publish_checkpoint" not in repr(c) for c in callbacks)
