"""Benchmarks of the mass-balance checks (issue 3), each against a baseline of the same run.

1. Submit-to-flag-visible latency with one real Celery worker (solo pool) on Redis: a
   ``receive`` 3 % short of what was shipped is submitted through ledger.services, and the
   clock stops when its transit-loss flag can be read from PostgreSQL (target p50 <= 2 s).
2. A full sweep over 100,000 transforms: the daily integrity sweep (hash, chain, layout
   and columns of every record, Merkle root against the signed checkpoint) and the
   mass-balance sweep (every transform rule) over a log of 100,000 signed HPMS transforms
   inserted in bulk, 1 % of them with an implausible yield (target <= 30 s together), in
   one process and as the tasks of checks.sweep_full on one process per core; beside it,
   the incremental sweep that verifies every signature once, against a bare verify loop.
3. Check cost per entry as a ratio of the submission cost: 2,000 transforms submitted in
   bulks of 500 through ledger.services (the on-commit enqueue to Redis included), then
   their pending checks run in-process as a worker runs them (100 per message), and 200 of
   them once more one per message (a single-entry submission's check).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/magnet_ledger .venv/bin/python bench/checks.py
    .venv/bin/python bench/checks.py --transforms 20000 --samples 20     # a quicker look

It never touches the database DATABASE_URL names: it creates (if missing), migrates and
wipes ``magnet_ledger_bench_checks`` on the same server (BENCH_CHECKS_DATABASE_URL
overrides), and uses Redis database 14 (flushed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    REPO,
    BenchOrg,
    bootstrap_django,
    ensure_database,
    flush_redis,
    machine,
    make_orgs,
    percentile,
    redis_reachable,
    reset_world,
)

DB_NAME = "magnet_ledger_bench_checks"
REDIS_DB = 14
EV = {"Nd": 230000, "Pr": 60000, "Dy": 20000, "Tb": 3000, "B": 10000, "Co": 10000, "Fe": 660000}


def _urls() -> tuple[str, str]:
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith("postgres"):
        sys.exit(
            "bench/checks.py needs PostgreSQL: set DATABASE_URL (it uses its own database on that server)."
        )
    parts = urlsplit(base)
    db = os.environ.get("BENCH_CHECKS_DATABASE_URL") or urlunsplit(
        (parts.scheme, parts.netloc, "/" + DB_NAME, parts.query, "")
    )
    r = urlsplit(os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379")
    return db, urlunsplit((r.scheme, r.netloc, f"/{REDIS_DB}", "", ""))


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _env(org: BenchOrg, type_: str, **fields: Any) -> dict[str, Any]:
    from ledger.protocol.envelope import make_envelope

    payload = {
        "id": str(uuid.uuid4()),
        "type": type_,
        "org": org.slug,
        "facility": org.facility,
        "occurred_at": _stamp(),
        **fields,
    }
    return make_envelope(org.key, payload)


def _submit(org: BenchOrg, envelopes: list[dict[str, Any]]) -> list[int]:
    from accounts.models import Organisation
    from ledger import services

    result = services.submit_entries(envelopes, organisation=Organisation.objects.get(pk=org.pk), bulk=True)
    return [r.seq for r in result.records]


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.002)


# -- 1. latency --------------------------------------------------------------------------


def latency(env: dict[str, str], samples: int, work: Path) -> dict[str, Any]:
    from checks.models import Flag, PendingCheck

    sender, recipient = make_orgs("lat", 2)
    reset_world([sender, recipient])
    batches = [f"lat-{i}-{uuid.uuid4().hex[:6]}" for i in range(samples)]
    _submit(
        sender,
        [
            _env(
                sender,
                "intake",
                batch=b,
                material="magnet_scrap",
                mass_g=100_000,
                origin="post_consumer",
                composition=EV,
            )
            for b in batches
        ],
    )
    _submit(sender, [_env(sender, "ship", batch=b, mass_g=100_000, to_org=recipient.slug) for b in batches])
    log = (work / "worker.log").open("ab")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "ledger.celery", "worker", "--pool", "solo", "-c", "1",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "WARNING"],
        cwd=REPO, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        _wait(lambda: not PendingCheck.objects.exists(), 120, "the worker to check the set-up entries")
        times = []
        for b in batches:
            envelope = _env(recipient, "receive", batch=b, mass_g=97_000)
            start = time.perf_counter()
            (seq,) = _submit(recipient, [envelope])
            _wait(lambda seq=seq: Flag.objects.filter(seqs__contains=[seq]).exists(), 30, "the flag")
            times.append(time.perf_counter() - start)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    return {
        "samples": samples,
        "p50_s": round(statistics.median(times), 4),
        "p90_s": round(percentile(sorted(times), 90), 4),
        "max_s": round(max(times), 4),
        "target_p50_s": 2.0,
    }


# -- 2. full sweep -----------------------------------------------------------------------


def fill_transforms(n: int, anomaly_every: int = 100) -> None:
    """n signed HPMS transforms (scrap -> powder + losses) appended with the service's own
    record builder, and their batches, inserted in bulk."""
    from django.db import transaction

    from ledger.log import Appendable, build_records, lock_log, log_head
    from ledger.models import Batch, EntryBatch, LogRecord
    from ledger.origin import METHOD
    from ledger.protocol.canonical import canonical_bytes

    (org,) = make_orgs("sweep", 1)
    reset_world([org])
    from accounts.models import Facility

    facility = Facility.objects.get(organisation_id=org.pk)
    origin = METHOD.intake("post_consumer")
    kid = org.key_id
    chunk = 5000
    for start in range(0, n, chunk):
        items, batches, links = [], [], []
        with transaction.atomic():
            lock_log()
            next_seq, prev = log_head()
            for i in range(start, min(n, start + chunk)):
                scrap, powder = f"sw-s{i}", f"sw-p{i}"
                powder_g = 70_000 if i % anomaly_every == 0 else 90_000
                payload = {
                    "id": str(uuid.uuid4()),
                    "type": "transform",
                    "org": org.slug,
                    "facility": org.facility,
                    "occurred_at": "2026-01-01T00:00:00Z",
                    "process": "hpms",
                    "inputs": [{"batch": scrap, "mass_g": 100_000}],
                    "outputs": [
                        {"batch": powder, "material": "alloy_powder", "mass_g": powder_g, "composition": EV}
                    ],
                    "losses": [{"kind": "off_gas", "mass_g": 100_000 - powder_g}],
                }
                raw = canonical_bytes(payload)
                from ledger.protocol.envelope import b64url_encode

                items.append(
                    Appendable(payload["id"], "transform", org.pk, kid, b64url_encode(org.key.sign(raw)), raw)
                )
                seq = next_seq + len(items) - 1
                for b, material, mass in ((scrap, "magnet_scrap", 0), (powder, "alloy_powder", powder_g)):
                    batches.append(
                        Batch(
                            id=b,
                            material=material,
                            mass_g=mass or 100_000,
                            remaining_g=mass,
                            composition=EV,
                            custodian_id=org.pk,
                            facility=facility,
                            status="depleted" if not mass else "active",
                            origin=origin,
                            created_seq=seq,
                            updated_seq=seq,
                        )
                    )
                links += [
                    EntryBatch(record_id=seq, batch_id=scrap, role="input", mass_g=100_000),
                    EntryBatch(record_id=seq, batch_id=powder, role="output", mass_g=powder_g),
                ]
            LogRecord.objects.bulk_create(
                build_records(items, next_seq, prev, datetime.now(UTC)), batch_size=1000
            )
            Batch.objects.bulk_create(batches, batch_size=2000)
            EntryBatch.objects.bulk_create(links, batch_size=2000)


def _task(job: tuple[str, int, int]) -> int:
    """What the checks.sweep_integrity(full=True) and checks.sweep_mass_balance_slice tasks
    do, in a pool process."""
    from checks import services

    kind, first, last = job
    if kind == "integrity":
        return len(services.sweep_integrity(full=True))
    return len(services.sweep_mass_balance(first, last))


def _fresh_connection() -> None:
    from django.db import connections

    for conn in connections.all():
        conn.close()


def sweep(n: int, processes: int) -> dict[str, Any]:
    import multiprocessing

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from django.db import connections

    from checks import services
    from checks.models import Flag, SweepState
    from ledger import transparency

    # Baseline of the same moment: a bare Ed25519 verify, the floor of a signature check.
    key = Ed25519PrivateKey.generate()
    message = b"x" * 700
    signature, public = key.sign(message), key.public_key()
    started = time.perf_counter()
    for _ in range(5000):
        public.verify(signature, message)
    verify_us = (time.perf_counter() - started) / 5000 * 1e6

    started = time.perf_counter()
    fill_transforms(n)
    fill_s = time.perf_counter() - started
    started = time.perf_counter()
    transparency.integrate_and_publish()  # the checkpoint beat signs every 30 s
    publish_s = time.perf_counter() - started
    expected = -(-n // 100)

    # The incremental sweep when it first sees the records: every signature.
    started = time.perf_counter()
    assert not services.sweep_integrity()
    first_sight_s = time.perf_counter() - started
    # The daily sweep, one process: integrity anchored on the signed checkpoint, then the
    # transform rules over every transform.
    started = time.perf_counter()
    assert not services.sweep_integrity(full=True), "a freshly built log must verify"
    integrity_s = time.perf_counter() - started
    started = time.perf_counter()
    balance = services.sweep_mass_balance()
    balance_s = time.perf_counter() - started
    assert len(balance) == Flag.objects.filter(rule="yield_out_of_range").count() == expected
    # The same as the workers run it (checks.sweep_full): the integrity task and the
    # mass-balance slices on a pool of one process per core, after dropping the flags so
    # the same work is redone.
    Flag.objects.all().delete()
    jobs = [("integrity", 0, 0)] + [("balance", a, b) for a, b in services.sweep_ranges()]
    connections.close_all()
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(processes, initializer=_fresh_connection) as pool:
        raised = sum(pool.imap_unordered(_task, jobs))
    parallel_s = time.perf_counter() - started
    assert raised == Flag.objects.count() == expected
    assert SweepState.objects.get(name="integrity").full_sweep_at is not None
    return {
        "transforms": n,
        "fill_s": round(fill_s, 2),
        "checkpoint_publish_s": round(publish_s, 2),
        "first_sight_integrity_s": round(first_sight_s, 2),
        "integrity_sweep_s": round(integrity_s, 2),
        "mass_balance_sweep_s": round(balance_s, 2),
        "one_process_s": round(integrity_s + balance_s, 2),
        "processes": processes,
        "tasks": len(jobs),
        "parallel_s": round(parallel_s, 2),
        "flags_raised": len(balance),
        "bare_verify_us": round(verify_us, 1),
        "first_sight_us_per_record": round(first_sight_s / n * 1e6, 1),
        "target_s": 30,
    }


# -- 3. check cost vs submission cost ---------------------------------------------------


def cost(n: int, bulk: int = 500) -> dict[str, Any]:
    from checks import services
    from checks.models import PendingCheck

    (org,) = make_orgs("cost", 1)
    reset_world([org])
    scraps = [f"c-s{i}-{uuid.uuid4().hex[:4]}" for i in range(n)]
    intake = {"material": "magnet_scrap", "mass_g": 100_000, "origin": "post_consumer", "composition": EV}
    for start in range(0, n, bulk):
        _submit(org, [_env(org, "intake", batch=b, **intake) for b in scraps[start : start + bulk]])
    PendingCheck.objects.all().delete()
    envelopes = [
        _env(
            org,
            "transform",
            process="hpms",
            inputs=[{"batch": b, "mass_g": 100_000}],
            outputs=[
                {
                    "batch": b.replace("c-s", "c-p"),
                    "material": "alloy_powder",
                    "mass_g": 90_000,
                    "composition": EV,
                }
            ],
            losses=[{"kind": "off_gas", "mass_g": 10_000}],
        )
        for b in scraps
    ]
    started = time.perf_counter()
    seqs = []
    for start in range(0, n, bulk):
        seqs += _submit(org, envelopes[start : start + bulk])
    submit_s = time.perf_counter() - started
    # As a worker runs them: one check_entries message per 100 entries of a submission.
    started = time.perf_counter()
    for start in range(0, n, services.ENQUEUE_CHUNK):
        services.run_pending_checks(seqs[start : start + services.ENQUEUE_CHUNK])
    check_s = time.perf_counter() - started
    # A single-entry submission's check: one entry per message.
    singles = seqs[: min(200, n)]
    PendingCheck.objects.bulk_create([PendingCheck(seq=seq) for seq in singles])
    started = time.perf_counter()
    for seq in singles:
        services.run_pending_check(seq)
    single_ms = (time.perf_counter() - started) * 1000 / len(singles)
    assert not PendingCheck.objects.exists()
    return {
        "entries": n,
        "submit_ms_per_entry": round(submit_s * 1000 / n, 3),
        "check_ms_per_entry": round(check_s * 1000 / n, 3),
        "check_over_submit": round(check_s / submit_s, 2),
        "single_check_ms": round(single_ms, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--transforms", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--cost-entries", type=int, default=2000)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2, help="for the sliced sweep")
    parser.add_argument("--only", default="latency,cost,sweep", help="comma-separated subset to run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    args.only = set(args.only.split(","))
    db_url, redis_url = _urls()
    if not redis_reachable(redis_url):
        sys.exit(f"bench/checks.py needs Redis at {redis_url} (REDIS_URL).")
    ensure_database(db_url)
    work = Path(tempfile.mkdtemp(prefix="bench-checks-"))
    env = bootstrap_django(db_url, redis_url, work)
    flush_redis(redis_url)
    results: dict[str, Any] = {"machine": machine()}
    try:
        if "latency" in args.only:
            results["latency"] = latency(env, args.samples, work)
            flush_redis(redis_url)
        if "cost" in args.only:
            results["cost"] = cost(args.cost_entries)
            flush_redis(redis_url)
        if "sweep" in args.only:
            results["sweep"] = sweep(args.transforms, args.processes)
    finally:
        flush_redis(redis_url)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"machine: {results['machine']}")
    if "latency" in results:
        lat = results["latency"]
        print(
            f"submit -> flag visible, 1 worker: p50 {lat['p50_s']} s, p90 {lat['p90_s']} s, "
            f"max {lat['max_s']} s ({lat['samples']} samples; target p50 <= 2 s)"
        )
    if "sweep" in results:
        swp = results["sweep"]
        print(
            f"full sweep over {swp['transforms']:,} transforms: {swp['parallel_s']} s as "
            f"{swp['tasks']} tasks on {swp['processes']} processes (target <= 30 s); one process: "
            f"integrity {swp['integrity_sweep_s']} s + mass balance {swp['mass_balance_sweep_s']} s = "
            f"{swp['one_process_s']} s; {swp['flags_raised']} flags"
        )
        print(
            f"incremental integrity sweep, first sight (every signature): "
            f"{swp['first_sight_integrity_s']} s, {swp['first_sight_us_per_record']} us per record vs a bare "
            f"Ed25519 verify {swp['bare_verify_us']} us"
        )
    if "cost" in results:
        cst = results["cost"]
        print(
            f"check cost per entry: {cst['check_ms_per_entry']} ms vs submission "
            f"{cst['submit_ms_per_entry']} ms (ratio {cst['check_over_submit']}, {cst['entries']} transforms "
            f"in bulks of 500); "
            f"one entry per message: {cst['single_check_ms']} ms"
        )


if __name__ == "__main__":
    main()
