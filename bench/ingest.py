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
import os
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
    CpuMeter,
    EnvelopeFactory,
    Gunicorn,
    backends_of,
    bench_database_url,
    bench_redis_url,
    bootstrap_django,
    bulk_body,
    chunks,
    current_database,
    ensure_database,
    envelope_bytes,
    flush_redis,
    machine,
    make_orgs,
    redis_reachable,
    reset_world,
    server_pids,
    take_run_lock,
    verdict,
    wipe_ledger,
)
from ledger.protocol.envelope import record_bytes

BULK = 1000
TARGET_RATE = 3000.0
TARGET_VS_LOOP = 0.5
TARGET_COST = 2.0


# -- (a) the bare loop ------------------------------------------------------------------


@dataclass
class Span:
    """Wall-clock seconds of a measured span, and the CPU seconds the measured processes
    used in it (NaN where /proc is unavailable)."""

    wall: float
    cpu: float


def median_span(spans: Sequence[Span]) -> Span:
    return Span(statistics.median(s.wall for s in spans), statistics.median(s.cpu for s in spans))


def bare_loop(raw: Sequence[bytes], public_keys: dict[str, Ed25519PublicKey]) -> Span:
    """Parse + JCS + leaf hash + verify over ``raw``, chaining like the log (this thread)."""
    stamp = "2026-11-27T00:00:00.000000Z"
    prev = "0" * 64
    cpu = time.thread_time()
    start = time.perf_counter()
    for seq, data in enumerate(raw):
        envelope = json.loads(data)
        payload_bytes = rfc8785.dumps(envelope["payload"])
        kid, signature = envelope["key_id"], envelope["signature"]
        public_keys[kid].verify(base64.urlsafe_b64decode(signature + "=="), payload_bytes)
        record = record_bytes(seq, stamp, prev, kid, payload_bytes, signature)
        prev = hashlib.sha256(b"\x00" + record).hexdigest()
    return Span(time.perf_counter() - start, time.thread_time() - cpu)


def baseline_loop(raw: Sequence[bytes], orgs: Sequence[BenchOrg], repeats: int = 3) -> Span:
    """(a) the bare loop in this process (median of ``repeats``)."""
    keys = {o.key_id: o.key.public_key() for o in orgs}
    return median_span([bare_loop(raw, keys) for _ in range(repeats)])


def _loop_in_child(raw: Sequence[bytes], keys_raw: dict[str, bytes]) -> Span:
    keys = {k: Ed25519PublicKey.from_public_bytes(v) for k, v in keys_raw.items()}
    return bare_loop(raw, keys)


def baseline_loop_parallel(raw: Sequence[bytes], orgs: Sequence[BenchOrg], processes: int = 2) -> float:
    """(a') entries/s of the bare loop split over ``processes`` processes: the CPU ceiling
    of the machine for this work (for information; the target is against one process)."""
    from ledger.protocol.keys import public_key_raw

    keys_raw = {o.key_id: public_key_raw(o.key) for o in orgs}
    parts = [raw[i::processes] for i in range(processes)]
    with ProcessPoolExecutor(processes) as pool:
        list(pool.map(_loop_in_child, [raw[:10]] * processes, [keys_raw] * processes))  # start them
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


def orm_insert(rows: list[tuple[list[Any], ...]]) -> Span:
    """bulk_create the precomputed rows, one transaction per chunk; the CPU counted is this
    thread's and the PostgreSQL backends' of the benchmark database."""
    from django.db import connection, transaction

    from ledger.models import Access, Batch, EntryBatch, LogRecord

    connection.ensure_connection()
    database = current_database()
    cpu = time.thread_time()
    with CpuMeter(lambda: backends_of(database)) as backends:
        start = time.perf_counter()
        for records, batches, links, grants in rows:
            with transaction.atomic():
                LogRecord.objects.bulk_create(records)
                Batch.objects.bulk_create(batches)
                EntryBatch.objects.bulk_create(links)
                Access.objects.bulk_create(grants, ignore_conflicts=True)
        wall = time.perf_counter() - start
    return Span(wall, time.thread_time() - cpu + backends.seconds)


def baseline_orm(envelopes: Sequence[dict[str, Any]], orgs: Sequence[BenchOrg], repeats: int = 3) -> Span:
    """(b) the plain bulk insert (median of ``repeats``, each on an empty log)."""
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
    return median_span(times)


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
) -> Span:
    """Send ``lanes`` by 1 client (interleaved) or by one client per lane, starting from an
    empty ledger and an empty broker; CPU is the server's (gunicorn and its PostgreSQL
    backends), not the clients'."""
    from ledger.models import LogRecord

    reset_world(orgs)
    flush_redis(server.env["REDIS_URL"])
    keys = LogRecord.objects.count()
    entries = sum(j.entries for lane in lanes for j in lane)
    plan = [interleave(lanes)] if clients == 1 else [list(lane) for lane in lanes]
    with CpuMeter(server_pids(server, current_database())) as meter:
        elapsed = post_jobs(server.url, plan)
    flush_redis(server.env["REDIS_URL"])
    written = LogRecord.objects.count() - keys
    if written != entries:
        raise RuntimeError(f"{entries} entries sent but {written} records written")
    return Span(elapsed, meter.seconds)


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
    workers: int = 2,
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
    spans: dict[str, Span] = {}
    spans["a"] = baseline_loop(raw, everyone, repeats)
    r["a_2proc"] = baseline_loop_parallel(raw, everyone, 2)
    spans["a_mixed"] = baseline_loop(mixed_raw, everyone, repeats)
    spans["b"] = baseline_orm(intakes, recyclers, repeats)
    with contextlib.ExitStack() as stack:
        if server is None:
            server = stack.enter_context(Gunicorn(env, work_dir, workers))
        r["server"] = server.described
        spans["c1"] = measure_system(server, jobs, 1, everyone)
        spans["c2"] = measure_system(server, jobs, 2, everyone)
        spans["m1"] = measure_system(server, lanes, 1, everyone)
        spans["m2"] = measure_system(server, lanes, 2, everyone)
    for name, span in spans.items():
        count = len(mixed_raw) if name.startswith(("m", "a_mixed")) else n
        r[name] = count / span.wall  # entries/s
        r[f"{name}_cpu_us"] = span.cpu / count * 1e6  # CPU µs per entry
    r["c2_vs_a"] = r["c2"] / r["a"]
    r["c1_vs_a"] = r["c1"] / r["a"]
    r["m2_vs_a"] = r["m2"] / r["a_mixed"]
    # Cost per entry of the system over the plain insert = rate(b) / rate(system).
    r["cost_c1"] = r["b"] / r["c1"]
    r["cost_c2"] = r["b"] / r["c2"]
    # The same ratios from CPU time, which the neighbours' load disturbs much less: what
    # 2 idle cores could do if the server's CPU per entry were spread over both.
    cores = os.cpu_count() or 1
    r["capacity"] = cores / (r["c1_cpu_us"] / 1e6)
    r["capacity_vs_a"] = r["capacity"] / (1e6 / r["a_cpu_us"])
    r["cpu_cost"] = r["c1_cpu_us"] / r["b_cpu_us"]
    r["ok_rate"] = r["c2"] >= TARGET_RATE
    r["ok_vs_a"] = r["c2_vs_a"] >= TARGET_VS_LOOP
    r["ok_cost"] = r["cost_c1"] <= TARGET_COST
    return r


def report(r: dict[str, Any]) -> str:
    """The figures as a plain-text table."""

    def row(label: str, key: str) -> str:
        cpu = r.get(f"{key}_cpu_us")
        cpu_text = f"{cpu:>8,.0f} µs CPU/entry" if cpu is not None and cpu == cpu else ""
        return f"  {label:<48} {r[key]:>9,.0f} entries/s  {cpu_text}"

    lines = [
        f"bulk ingest: {r['n']:,} intakes (~{r['envelope_bytes']} B JCS envelope), mixed: {r['mixed_n']:,} "
        "entries (intake, dismantling, ship, receive, HPMS); bulks of 1,000",
        row("(a)  bare loop parse+JCS+hash+verify, 1 process", "a"),
        row("(a') the same loop over 2 processes", "a_2proc"),
        row("(a)  bare loop over the mixed envelopes", "a_mixed"),
        row("(b)  ORM bulk_create of the same rows", "b"),
        f"  server: {r['server']}",
        row("(c)  system over HTTP, 1 client", "c1"),
        row("(c)  system, 2 clients", "c2"),
        row("(m)  system, mixed, 1 client", "m1"),
        row("(m)  system, mixed, 2 clients", "m2"),
        f"  system(2 clients) / (a)  = {r['c2_vs_a']:.2f}  "
        f"(target >= {TARGET_VS_LOOP}: {verdict(r['ok_vs_a'])})",
        f"  system(1 client) / (a)   = {r['c1_vs_a']:.2f}",
        f"  mixed(2 clients) / (a)   = {r['m2_vs_a']:.2f}",
        f"  cost system(1 client) / (b) = {r['cost_c1']:.2f}  (target <= {TARGET_COST}: "
        f"{verdict(r['ok_cost'])}); with 2 clients {r['cost_c2']:.2f}",
        f"  absolute (2 clients) {r['c2']:,.0f} entries/s  (target >= {TARGET_RATE:,.0f}: "
        f"{verdict(r['ok_rate'])})",
        f"  from CPU time (load-insensitive): server CPU/entry / (b) = {r['cpu_cost']:.2f}; "
        f"{os.cpu_count()} idle cores could ingest ~{r['capacity']:,.0f} entries/s "
        f"= {r['capacity_vs_a']:.2f} x (a)",
    ]
    return "\n".join(lines)


def prepare() -> tuple[dict[str, str], Path] | None:
    """Bootstrap Django against the benchmark database and broker, or explain what is
    missing (and return None)."""
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
    if not take_run_lock(bench_url):
        print(
            f"Another benchmark run is using {bench_url}; wait for it to finish "
            "(or point BENCH_DATABASE_URL at another database).",
            file=sys.stderr,
        )
        return None
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
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2, one per core)")
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
    result = run(env, work_dir, args.n, args.units, workers=args.workers)
    result["machine"] = info
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
