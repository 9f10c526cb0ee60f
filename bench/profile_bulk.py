"""Where the time of a bulk ingest goes: cProfile over bulks of 1,000 intakes POSTed through
the WSGI application in this process (the same view, services and database as under
gunicorn, without the socket), against the benchmark database.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/magnet_ledger .venv/bin/python bench/profile_bulk.py

Prints the functions with the most cumulative and own time, and the share of a few
stages (signature verify, JCS, SQL round trips, rendering) in the whole.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import EnvelopeFactory, bulk_body, chunks, make_orgs, reset_world
from bench.ingest import BULK, prepare

# (label, substring of "file:line(function)") for the stage summary.
STAGES = [
    ("Ed25519 verify", "verify' of '_cffi_backend"),
    ("Ed25519 verify", "method 'verify'"),
    ("RFC 8785 (rfc8785.dumps)", "rfc8785/_impl.py"),
    ("payload validation (payloads.validate_payload)", "validate_payload"),
    ("SQL: psycopg execute/wait", "psycopg/connection.py"),
    ("SQL: Django compiler", "django/db/models/sql/compiler.py"),
    ("response rendering (JSONRenderer)", "renderers.py"),
    ("request parsing (parse_json)", "parse_json"),
]


def stage_shares(stats: pstats.Stats, total: float) -> list[tuple[str, float]]:
    """Cumulative time of the named stages as shares of ``total`` (first match wins)."""
    seen: dict[str, float] = {}
    raw = stats.stats  # type: ignore[attr-defined]
    for (filename, line, name), (_cc, _nc, _tt, ct, _callers) in raw.items():
        key = f"{filename}:{line}({name})"
        for label, needle in STAGES:
            if needle in key:
                seen[label] = max(seen.get(label, 0.0), ct)
    return [
        (label, seen[label] / total) for label in dict.fromkeys(lbl for lbl, _ in STAGES) if label in seen
    ]


def profile(bulks: int, top: int) -> str:
    """Profile ``bulks`` bulk POSTs (after one unprofiled warm-up bulk); return the report."""
    from django.test import Client

    orgs = make_orgs("prof", 1)
    reset_world(orgs)
    org = orgs[0]
    envelopes = EnvelopeFactory(7).intakes(orgs, BULK * (bulks + 1))[org.slug]
    bodies = [bulk_body(c) for c in chunks(envelopes, BULK)]
    client = Client(HTTP_AUTHORIZATION=f"Token {org.token}", HTTP_HOST="127.0.0.1")

    def post(body: bytes) -> None:
        response = client.post("/api/v1/entries/", body, content_type="application/json")
        if response.status_code != 201:
            raise RuntimeError(f"{response.status_code}: {response.content[:300]!r}")

    post(bodies[0])
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    for body in bodies[1:]:
        post(body)
    profiler.disable()
    wall = time.perf_counter() - start
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    total = stats.total_tt  # type: ignore[attr-defined]
    n = BULK * bulks
    out.write(
        f"{n:,} entries in {bulks} bulks: {wall:.2f} s wall under the profiler, "
        f"{total / n * 1e6:,.0f} µs/entry profiled\n\nstage shares (cumulative):\n"
    )
    for label, share in stage_shares(stats, total):
        out.write(f"  {label:<50} {share:6.1%}\n")
    out.write("\n")
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bulks", type=int, default=5, help="profiled bulks of 1,000 (default 5)")
    parser.add_argument("--top", type=int, default=30, help="rows per listing")
    args = parser.parse_args(argv)
    if prepare() is None:
        return 2
    print(profile(args.bulks, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
