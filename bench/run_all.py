"""Every benchmark in one run (what `make bench` calls), then a summary table of the
DESIGN.md performance targets. Needs DATABASE_URL (PostgreSQL) and Redis; run without them
to be told what they are for.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/magnet_ledger make bench
    .venv/bin/python bench/run_all.py --quick      # smaller N, for a first look
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import ingest, single_submit
from bench.common import REPO, machine, verdict


def revision() -> str:
    """The commit measured, marked dirty when the work tree differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (dirty)" if dirty else "")


def summary(bulk: dict[str, Any], single: dict[str, Any]) -> str:
    """One row per DESIGN.md target measured here: figure, baseline ratio, verdict."""
    rows = [
        ("bulk ingest, 2 clients", f"{bulk['c2']:,.0f} entries/s", ">= 3,000 entries/s", bulk["ok_rate"]),
        ("bulk ingest / bare loop (a)", f"{bulk['c2_vs_a']:.2f}", ">= 0.5", bulk["ok_vs_a"]),
        ("bulk append cost / ORM insert (b)", f"{bulk['cost_c1']:.2f}", "<= 2", bulk["ok_cost"]),
        (
            "single submit p50, 8 clients",
            f"{single['submit_p50']:.1f} ms (x{single['p50_vs_healthz']:.1f} healthz)",
            "<= 15 ms",
            single["ok_p50"],
        ),
        (
            "single submit p99, 8 clients",
            f"{single['submit_p99']:.1f} ms (x{single['p99_vs_healthz']:.1f} healthz)",
            "<= 50 ms",
            single["ok_p99"],
        ),
    ]
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    lines = [f"{'target':<{width}}  {'measured':<{value_width}}  {'goal':<20}  verdict"]
    lines += [
        f"{name:<{width}}  {value:<{value_width}}  {goal:<20}  {verdict(ok)}"
        for name, value, goal, ok in rows
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=20_000, help="bulk intakes (default 20,000)")
    parser.add_argument(
        "--units", type=int, default=2_000, help="mixed-scenario units per lane (default 2,000)"
    )
    parser.add_argument("--requests", type=int, default=2_000, help="single-submit requests (default 2,000)")
    parser.add_argument("--quick", action="store_true", help="n=4,000, units=400, requests=400")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2, one per core)")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.units, args.requests = 4_000, 400, 400
    prepared = ingest.prepare()
    if prepared is None:
        return 2
    env, work_dir = prepared
    before = machine()
    print(
        f"{before['date']}  {before['cpu']}  nproc={before['nproc']}  python {before['python']}  "
        f"load {before['load']}  revision {revision()}\n"
    )
    bulk = ingest.run(env, work_dir, args.n, args.units, workers=args.workers)
    print(ingest.report(bulk) + "\n")
    single = single_submit.run(env, work_dir, args.requests, workers=args.workers)
    print(single_submit.report(single) + "\n")
    after = machine()
    print(f"load before {before['load']}, after {after['load']}\n")
    print(summary(bulk, single))
    if args.json:
        payload = {"machine": before, "load_after": after["load"], "revision": revision()}
        args.json.write_text(json.dumps(payload | {"bulk": bulk, "single": single}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
