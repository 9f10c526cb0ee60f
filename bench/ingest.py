"""Bulk ingest benchmark: the ledger over real HTTP into PostgreSQL, against two baselines
measured in the same run on the same envelopes.

(a)  a bare loop in one process: json.loads + RFC 8785 + leaf hash + Ed25519 verify
(b)  a plain ORM bulk_create of the rows the ledger writes for those intakes (LogRecord,
     Batch, EntryBatch, Access, values precomputed), one transaction per 1,000
(c)  the system: gunicorn (2 workers) + PostgreSQL, bulks of 1,000 POSTed with httpx from
     1 and from 2 concurrent clients; and a mixed scenario (intake, dismantling, ship,
     receive, HPMS) whose entries read and change existing batches.

Machines are noisy: read the ratios, not the absolute figures. Run:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/magnet_ledger .venv/bin/python bench/ingest.py
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    BENCH_DB_NAME,
    BENCH_REDIS_DB,
    NEEDS,
    BenchOrg,
    EnvelopeFactory,
    Gunicorn,
    bench_database_url,
    bench_redis_url,
    bootstrap_django,
    bulk_body,
    chunks,
    ensure_database,
    envelope_bytes,
    flush_redis,
    machine,
    make_orgs,
    redis_reachable,
    reset_world,
    verdict,
    wipe_ledger,
)
from ledger.protocol.envelope import record_bytes

BULK = 1000
TARGET_RATE = 3000.0
TARGET_VS_LOOP = 0.5
TARGET_COST = 2.0


# -- (a) the bare loop ------------------------------------------------------------------


def bare_loop(raw: Sequence[bytes], public_keys: dict[str, Ed25519PublicKey]) -> float:
    """Seconds for parse + JCS + leaf hash + verify over ``raw``, chaining like the log."""
    stamp = "2026-11-27T00:00:00.000000Z"
    prev = "0" * 64
    start = time.perf_counter()
    for seq, data in enumerate(raw):
        envelope = json.loads(data)
        payload_bytes = rfc8785.dumps(envelope["payload"])
        kid, signature = envelope["key_id"], envelope["signature"]
        public_keys[kid].verify(base64.urlsafe_b64decode(signature + "=="), payload_bytes)
        record = record_bytes(seq, stamp, prev, kid, payload_bytes, signature)
        prev = hashlib.sha256(b"\x00" + record).hexdigest()
    return time.perf_counter() - start


def baseline_loop(raw: Sequence[bytes], orgs: Sequence[BenchOrg], repeats: int = 3) -> float:
    """(a) entries/s of the bare loop in this process (median of ``repeats``)."""
    keys = {o.key_id: o.key.public_key() for o in orgs}
    return len(raw) / statistics.median(bare_loop(raw, keys) for _ in range(repeats))


def _loop_in_child(raw: Sequence[bytes], keys_raw: dict[str, bytes]) -> float:
    keys = {k: Ed25519PublicKey.from_public_bytes(v) for k, v in keys_raw.items()}
    return bare_loop(raw, keys)


def baseline_loop_parallel(raw: Sequence[bytes], orgs: Sequence[BenchOrg], processes: int = 2) -> float:
    """(a') entries/s of the bare loop split over ``processes`` processes: the CPU ceiling
    of the machine for this work (for information; the target is against one process)."""
    from ledger.protocol.keys import public_key_raw

    keys_raw = {o.key_id: public_key_raw(o.key) for o in orgs}
    parts = [raw[i::processes] for i in range(processes)]
    with ProcessPoolExecutor(processes) as pool:
        start = time.perf_counter()
        list(pool.map(_loop_in_child, parts, [keys_raw] * processes))
        elapsed = time.perf_counter() - start
    return len(raw) / elapsed


# -- (b) plain ORM bulk insert ----------------------------------------------------------


def intake_rows(envelopes: Sequence[dict[str, Any]], orgs: Sequence[BenchOrg]) -> list[tuple[list[Any], ...]]:
    """The rows the ledger writes for these intakes, precomputed, in chunks of BULK:
    (records, batches, links, grants) per chunk, chained after the current log head."""
    from django.utils import timezone

    from accounts.models import Facility
    from ledger.log import Appendable, build_records, log_head
    from ledger.models import Access, Batch, EntryBatch
    from ledger.origin import METHOD

    by_slug = {o.slug: o for o in orgs}
    facilities = {f.organisation_id: f.pk for f in Facility.objects.filter(organisation__slug__in=by_slug)}
    seq, prev = log_head()
    out = []
    for chunk in chunks(envelopes, BULK):
        items = [
            Appendable(
                entry_id=e["payload"]["id"],
                entry_type="intake",
                organisation_id=by_slug[e["payload"]["org"]].pk,
                key_id=e["key_id"],
                signature=e["signature"],
                payload_bytes=rfc8785.dumps(e["payload"]),
            )
            for e in chunk
        ]
        records = build_records(items, seq, prev, timezone.now())
        batches, links, grants = [], [], []
        for record, envelope in zip(records, chunk, strict=True):
            p = envelope["payload"]
            org = by_slug[p["org"]]
            batches.append(
                Batch(
                    id=p["batch"],
                    material=p["material"],
                    mass_g=p["mass_g"],
                    remaining_g=p["mass_g"],
                    composition=p.get("composition"),
                    composition_seq=record.seq if "composition" in p else None,
                    custodian_id=org.pk,
                    facility_id=facilities[org.pk],
                    status="active",
                    origin=METHOD.intake(p["origin"]),
                    created_seq=record.seq,
                    updated_seq=record.seq,
                )
            )
            links.append(
                EntryBatch(record_id=record.seq, batch_id=p["batch"], role="output", mass_g=p["mass_g"])
            )
            grants.append(Access(organisation_id=org.pk, batch_id=p["batch"], via="custody"))
        out.append((records, batches, links, grants))
        seq, prev = seq + len(records), records[-1].leaf_hash
    return out


def orm_insert(rows: list[tuple[list[Any], ...]]) -> float:
    """Seconds to bulk_create the precomputed rows, one transaction per chunk."""
    from django.db import transaction

    from ledger.models import Access, Batch, EntryBatch, LogRecord

    start = time.perf_counter()
    for records, batches, links, grants in rows:
        with transaction.atomic():
            LogRecord.objects.bulk_create(records)
            Batch.objects.bulk_create(batches)
            EntryBatch.objects.bulk_create(links)
            Access.objects.bulk_create(grants, ignore_conflicts=True)
    return time.perf_counter() - start


def baseline_orm(envelopes: Sequence[dict[str, Any]], orgs: Sequence[BenchOrg], repeats: int = 3) -> float:
    """(b) entries/s of the plain bulk insert (median of ``repeats``, each on an empty log)."""
    from ledger.models import Access, Batch, EntryBatch, LogRecord

    times = []
    for _ in range(repeats):
        wipe_ledger()
        rows = intake_rows(envelopes, orgs)
        times.append(orm_insert(rows))
        counts = [m.objects.count() for m in (LogRecord, Batch, EntryBatch, Access)]
        if counts != [len(envelopes)] * 4:
            raise RuntimeError(f"the plain insert wrote {counts} rows, not {len(envelopes)} of each")
    wipe_ledger()
    return len(envelopes) / statistics.median(times)


# -- (c) the system over HTTP -----------------------------------------------------------


@dataclass
class Job:
    """One bulk request: who sends it and the body, serialised before the clock starts."""

    org: BenchOrg
    body: bytes
    entries: int


def post_jobs(base_url: str, clients: Sequence[Sequence[Job]]) -> float:
    """Each client (a thread with its own keep-alive httpx.Client) POSTs its jobs in order;
    all start together. Returns the wall-clock seconds until the last response. Any answer
    but 201 aborts the run: a benchmark of refusals measures nothing."""
    barrier = threading.Barrier(len(clients) + 1)
    errors: list[str] = []

    def client(jobs: Sequence[Job]) -> None:
        with httpx.Client(base_url=base_url, timeout=120) as http:
            barrier.wait()
            for job in jobs:
                response = http.post(
                    "/api/v1/entries/",
                    content=job.body,
                    headers={"Authorization": f"Token {job.org.token}", "Content-Type": "application/json"},
                )
                if response.status_code != 201:
                    errors.append(f"{response.status_code}: {response.text[:500]}")
                    return

    threads = [threading.Thread(target=client, args=(jobs,)) for jobs in clients]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"a bulk was refused: {errors[0]}")
    return elapsed


def intake_jobs(by_org: dict[str, list[dict[str, Any]]], orgs: Sequence[BenchOrg]) -> list[list[Job]]:
    """One job list per organisation, bulks of BULK."""
    return [[Job(o, bulk_body(c), len(c)) for c in chunks(by_org[o.slug], BULK)] for o in orgs]


def interleave(lanes: Sequence[Sequence[Job]]) -> list[Job]:
    """The lanes' jobs as one client sends them: round-robin, each lane's order kept."""
    out: list[Job] = []
    for i in range(max(len(lane) for lane in lanes)):
        out.extend(lane[i] for lane in lanes if i < len(lane))
    return out


def measure_system(
    server: Gunicorn, lanes: Sequence[Sequence[Job]], clients: int, orgs: Sequence[BenchOrg]
) -> tuple[float, int]:
    """(entries/s, records written) for ``lanes`` sent by 1 client (interleaved) or by one
    client per lane, starting from an empty ledger and an empty broker."""
    from ledger.models import LogRecord

    reset_world(orgs)
    flush_redis(server.env["REDIS_URL"])
    keys = LogRecord.objects.count()
    entries = sum(j.entries for lane in lanes for j in lane)
    plan = [interleave(lanes)] if clients == 1 else [list(lane) for lane in lanes]
    elapsed = post_jobs(server.url, plan)
    flush_redis(server.env["REDIS_URL"])
    written = LogRecord.objects.count() - keys
    if written != entries:
        raise RuntimeError(f"{entries} entries sent but {written} records written")
    return entries / elapsed, written


def mixed_lanes(
    factory: EnvelopeFactory, pairs: Sequence[tuple[BenchOrg, BenchOrg]], units: int
) -> list[list[Job]]:
    """Per (sender, receiver) pair: sender bulk of intake/transform/ship for up to 333
    units, then the receiver's bulk of receive/transform for the same units, and so on."""
    per_bulk = BULK // 3
    lanes = []
    for sender, receiver in pairs:
        lane: list[Job] = []
        for first in range(0, units, per_bulk):
            sent, received = factory.chain_units(sender, receiver, min(per_bulk, units - first), first)
            lane.append(Job(sender, bulk_body(sent), len(sent)))
            lane.append(Job(receiver, bulk_body(received), len(received)))
        lanes.append(lane)
    return lanes


def lane_envelopes(lanes: Sequence[Sequence[Job]]) -> list[bytes]:
    return [envelope_bytes(e) for lane in lanes for job in lane for e in json.loads(job.body)["entries"]]


# -- the run ----------------------------------------------------------------------------


def run(
    env: dict[str, str],
    work_dir: Path,
    n: int = 20_000,
    units: int = 2_000,
    repeats: int = 3,
    server: Gunicorn | None = None,
) -> dict[str, Any]:
    """The whole ingest benchmark; returns every figure and ratio. The baselines take the
    median of ``repeats``; ``server`` is a running gunicorn to use instead of starting one."""
    recyclers = make_orgs("recy", 2)
    senders, receivers = make_orgs("dism", 2), make_orgs("hpms", 2)
    everyone = recyclers + senders + receivers
    reset_world(everyone)
    factory = EnvelopeFactory(1)
    by_org = factory.intakes(recyclers, n)
    intakes = [e for o in recyclers for e in by_org[o.slug]]
    raw = [envelope_bytes(e) for e in intakes]
    jobs = intake_jobs(by_org, recyclers)
    lanes = mixed_lanes(factory, list(zip(senders, receivers, strict=True)), units)
    mixed_raw = lane_envelopes(lanes)
    canonical = statistics.mean(len(rfc8785.dumps(e)) for e in intakes[:1000])

    r: dict[str, Any] = {"n": n, "mixed_n": len(mixed_raw), "envelope_bytes": round(canonical)}
    r["a"] = baseline_loop(raw, everyone, repeats)
    r["a_2proc"] = baseline_loop_parallel(raw, everyone, 2)
    r["a_mixed"] = baseline_loop(mixed_raw, everyone, repeats)
    r["b"] = baseline_orm(intakes, recyclers, repeats)
    with contextlib.ExitStack() as stack:
        if server is None:
            server = stack.enter_context(Gunicorn(env, work_dir))
        r["c1"], _ = measure_system(server, jobs, 1, everyone)
        r["c2"], _ = measure_system(server, jobs, 2, everyone)
        r["m1"], _ = measure_system(server, lanes, 1, everyone)
        r["m2"], _ = measure_system(server, lanes, 2, everyone)
    r["c2_vs_a"] = r["c2"] / r["a"]
    r["c1_vs_a"] = r["c1"] / r["a"]
    r["m2_vs_a"] = r["m2"] / r["a_mixed"]
    # Cost per entry of the system over the plain insert = rate(b) / rate(system).
    r["cost_c1"] = r["b"] / r["c1"]
    r["cost_c2"] = r["b"] / r["c2"]
    r["ok_rate"] = r["c2"] >= TARGET_RATE
    r["ok_vs_a"] = r["c2_vs_a"] >= TARGET_VS_LOOP
    r["ok_cost"] = r["cost_c1"] <= TARGET_COST
    return r


def report(r: dict[str, Any]) -> str:
    """The figures as a plain-text table."""
    lines = [
        f"bulk ingest: {r['n']:,} intakes (~{r['envelope_bytes']} B JCS envelope), mixed: {r['mixed_n']:,} "
        "entries (intake, dismantling, ship, receive, HPMS); bulks of 1,000",
        f"  (a)  bare loop parse+JCS+hash+verify, 1 process  {r['a']:>9,.0f} entries/s",
        f"  (a') the same loop over 2 processes              {r['a_2proc']:>9,.0f} entries/s",
        f"  (a)  bare loop over the mixed envelopes          {r['a_mixed']:>9,.0f} entries/s",
        f"  (b)  ORM bulk_create of the same rows            {r['b']:>9,.0f} entries/s",
        f"  (c)  system, HTTP+gunicorn -w 2+PG, 1 client     {r['c1']:>9,.0f} entries/s",
        f"  (c)  system, 2 clients                           {r['c2']:>9,.0f} entries/s",
        f"  (m)  system, mixed, 1 client                     {r['m1']:>9,.0f} entries/s",
        f"  (m)  system, mixed, 2 clients                    {r['m2']:>9,.0f} entries/s",
        f"  system(2 clients) / (a)  = {r['c2_vs_a']:.2f}  "
        f"(target >= {TARGET_VS_LOOP}: {verdict(r['ok_vs_a'])})",
        f"  system(1 client) / (a)   = {r['c1_vs_a']:.2f}",
        f"  mixed(2 clients) / (a)   = {r['m2_vs_a']:.2f}",
        f"  cost system(1 client) / (b) = {r['cost_c1']:.2f}  (target <= {TARGET_COST}: "
        f"{verdict(r['ok_cost'])}); with 2 clients {r['cost_c2']:.2f}",
        f"  absolute (2 clients) {r['c2']:,.0f} entries/s  (target >= {TARGET_RATE:,.0f}: "
        f"{verdict(r['ok_rate'])})",
    ]
    return "\n".join(lines)


def prepare() -> tuple[dict[str, str], Path] | None:
    """Bootstrap Django against the benchmark database and broker, or explain what is
    missing (and return None)."""
    import os

    url = os.environ.get("DATABASE_URL", "")
    needs = NEEDS.format(bench_db=BENCH_DB_NAME, redis_db=BENCH_REDIS_DB)
    if not url and not os.environ.get("BENCH_DATABASE_URL"):
        print(needs, file=sys.stderr)
        return None
    redis_url = bench_redis_url(os.environ.get("REDIS_URL", ""))
    if not redis_reachable(redis_url):
        print(f"Redis is not reachable at {redis_url}.\n\n{needs}", file=sys.stderr)
        return None
    bench_url = bench_database_url(url)
    ensure_database(bench_url)
    work_dir = Path(tempfile.mkdtemp(prefix="magnet-bench-"))
    env = bootstrap_django(bench_url, redis_url, work_dir)
    return env, work_dir


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=20_000, help="intake entries (default 20,000)")
    parser.add_argument(
        "--units", type=int, default=2_000, help="mixed-scenario units per lane (5 entries each)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    prepared = prepare()
    if prepared is None:
        return 2
    env, work_dir = prepared
    info = machine()
    print(
        f"{info['date']}  {info['cpu']}  nproc={info['nproc']}  python {info['python']}  load {info['load']}"
    )
    result = run(env, work_dir, args.n, args.units)
    result["machine"] = info
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
