"""Single-entry submission latency with 8 concurrent clients, over real HTTP into gunicorn
(2 workers) and PostgreSQL, against a baseline measured in the same run under the same
load: GET /healthz (the floor of HTTP + Django + one database round trip).

Each client is a thread with its own keep-alive httpx.Client and its own organisation
(token, key), submitting pre-signed intakes one at a time. Run:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/magnet_ledger .venv/bin/python bench/single_submit.py
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    BenchOrg,
    CpuMeter,
    EnvelopeFactory,
    Gunicorn,
    current_database,
    envelope_bytes,
    flush_redis,
    machine,
    make_orgs,
    percentile,
    reset_world,
    server_pids,
    verdict,
)
from bench.ingest import prepare

CLIENTS = 8
WARMUP = 5
TARGET_P50_MS = 15.0
TARGET_P99_MS = 50.0

Request = Callable[[httpx.Client, BenchOrg, int], httpx.Response]


@dataclass
class Latencies:
    """Sorted per-request latencies in ms and the wall time of the whole phase."""

    ms: list[float]
    wall: float

    @property
    def p50(self) -> float:
        return percentile(self.ms, 50)

    @property
    def p99(self) -> float:
        return percentile(self.ms, 99)

    @property
    def rate(self) -> float:
        return len(self.ms) / self.wall


def load(
    base_url: str, orgs: Sequence[BenchOrg], per_client: int, request: Request, expect: int
) -> Latencies:
    """Every client sends WARMUP untimed requests, waits for the others, then ``per_client``
    timed ones back to back. Any status but ``expect`` aborts the phase."""
    barrier = threading.Barrier(len(orgs) + 1)
    done = threading.Barrier(len(orgs) + 1)
    samples: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(org: BenchOrg) -> None:
        mine = []
        with httpx.Client(base_url=base_url, timeout=30) as http:
            try:
                for i in range(WARMUP):
                    request(http, org, i)
            finally:
                barrier.wait()
            for i in range(WARMUP, WARMUP + per_client):
                start = time.perf_counter()
                response = request(http, org, i)
                mine.append((time.perf_counter() - start) * 1000)
                if response.status_code != expect:
                    errors.append(f"{response.status_code}: {response.text[:300]}")
                    break
        with lock:
            samples.extend(mine)
        done.wait()

    threads = [threading.Thread(target=client, args=(o,)) for o in orgs]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    done.wait()
    wall = time.perf_counter() - start
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"a request failed: {errors[0]}")
    return Latencies(sorted(samples), wall)


def run(
    env: dict[str, str],
    work_dir: Path,
    requests: int = 2_000,
    clients: int = CLIENTS,
    server: Gunicorn | None = None,
    workers: int = 2,
) -> dict[str, Any]:
    """The single-submit benchmark; returns every figure and ratio. ``server`` is a running
    gunicorn to use instead of starting one."""
    from ledger.models import LogRecord

    orgs = make_orgs("single", clients)
    reset_world(orgs)
    per_client = max(1, requests // clients)
    factory = EnvelopeFactory(11)
    bodies = {
        o.slug: [envelope_bytes(factory.intake(o, i)) for i in range(WARMUP + per_client)] for o in orgs
    }
    before = LogRecord.objects.count()

    def healthz(http: httpx.Client, org: BenchOrg, i: int) -> httpx.Response:
        return http.get("/healthz")

    def submit(http: httpx.Client, org: BenchOrg, i: int) -> httpx.Response:
        return http.post(
            "/api/v1/entries/",
            content=bodies[org.slug][i],
            headers={"Authorization": f"Token {org.token}", "Content-Type": "application/json"},
        )

    with contextlib.ExitStack() as stack:
        if server is None:
            server = stack.enter_context(Gunicorn(env, work_dir, workers))
        described = server.described
        processes = server_pids(server, current_database())
        with CpuMeter(processes) as floor_cpu:
            floor = load(server.url, orgs, per_client, healthz, 200)
        flush_redis(server.env["REDIS_URL"])
        with CpuMeter(processes) as entries_cpu:
            entries = load(server.url, orgs, per_client, submit, 201)
        flush_redis(server.env["REDIS_URL"])
    written = LogRecord.objects.count() - before
    if written != (WARMUP + per_client) * clients:
        raise RuntimeError(f"{(WARMUP + per_client) * clients} entries sent but {written} records written")
    r: dict[str, Any] = {
        "clients": clients,
        "server": described,
        "requests": per_client * clients,
        "submit_p50": entries.p50,
        "submit_p99": entries.p99,
        "submit_rate": entries.rate,
        "healthz_p50": floor.p50,
        "healthz_p99": floor.p99,
        "healthz_rate": floor.rate,
    }
    sent = (WARMUP + per_client) * clients  # the meters include the warm-up requests
    r["submit_cpu_ms"] = entries_cpu.seconds / sent * 1000
    r["healthz_cpu_ms"] = floor_cpu.seconds / sent * 1000
    r["cpu_vs_healthz"] = r["submit_cpu_ms"] / r["healthz_cpu_ms"]
    r["p50_vs_healthz"] = entries.p50 / floor.p50
    r["p99_vs_healthz"] = entries.p99 / floor.p99
    r["ok_p50"] = entries.p50 <= TARGET_P50_MS
    r["ok_p99"] = entries.p99 <= TARGET_P99_MS
    return r


def report(r: dict[str, Any]) -> str:
    """The figures as a plain-text table."""
    return "\n".join(
        [
            f"single-entry submit: {r['requests']:,} requests from {r['clients']} concurrent clients",
            f"  server: {r['server']}",
            f"  GET /healthz (baseline)   p50 {r['healthz_p50']:7.2f} ms  p99 {r['healthz_p99']:7.2f} ms  "
            f"{r['healthz_rate']:7,.0f} req/s  {r['healthz_cpu_ms']:6.2f} ms server CPU/request",
            f"  POST one intake           p50 {r['submit_p50']:7.2f} ms  p99 {r['submit_p99']:7.2f} ms  "
            f"{r['submit_rate']:7,.0f} req/s  {r['submit_cpu_ms']:6.2f} ms server CPU/request",
            f"  submit / healthz          p50 x{r['p50_vs_healthz']:.1f}        "
            f"p99 x{r['p99_vs_healthz']:.1f}        server CPU x{r['cpu_vs_healthz']:.1f}",
            f"  targets: p50 <= {TARGET_P50_MS:.0f} ms {verdict(r['ok_p50'])}, "
            f"p99 <= {TARGET_P99_MS:.0f} ms {verdict(r['ok_p99'])}",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2_000, help="timed requests in all (default 2,000)")
    parser.add_argument("--clients", type=int, default=CLIENTS, help="concurrent clients (default 8)")
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
    result = run(env, work_dir, args.requests, args.clients, workers=args.workers)
    result["machine"] = info
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
