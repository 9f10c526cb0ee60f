"""The benchmarks' code paths at a tiny N, so they cannot rot: each produces numbers and
writes the ledger rows it claims to. No timing is asserted (machines are noisy; the figures
live in docs/PERFORMANCE.md).

The benchmarks run against the test database here: gunicorn is started for real on
loopback with the test database's URL, so the data must be committed (transactional_db).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from bench import ingest, single_submit
from bench.common import (
    BENCH_DB_NAME,
    Gunicorn,
    bench_redis_url,
    database_url_of_connection,
    redis_reachable,
)
from ledger.models import Access, Batch, BatchStatus, EntryBatch, EntryType, LogRecord, Shipment
from tests.conftest import need_service

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def bench_env(transactional_db: None, settings: Any) -> dict[str, str]:
    """What a gunicorn subprocess needs to serve the test database with a Redis broker."""
    need_service("PostgreSQL", connection.vendor == "postgresql")
    redis_url = bench_redis_url(os.environ.get("REDIS_URL", ""))
    need_service("Redis", bool(os.environ.get("REDIS_URL")) and redis_reachable(redis_url))
    return {
        "DATABASE_URL": database_url_of_connection(),
        "REDIS_URL": redis_url,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "DEBUG": "false",
        "SECRET_KEY": "bench-smoke-test-only",
        "ALLOWED_HOSTS": "127.0.0.1",
        "LEDGER_LOG_KEY_FILE": settings.LEDGER_LOG_KEY_FILE,
        "DJANGO_SETTINGS_MODULE": "ledger.settings",
        "LOG_LEVEL": "WARNING",
    }


def _positive(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


def test_both_benchmarks_measure_every_path_and_write_the_rows(
    bench_env: dict[str, str], tmp_path: Path
) -> None:
    # One gunicorn for both: starting it is most of this test's time.
    with Gunicorn(bench_env, tmp_path) as server:
        bulk = ingest.run(bench_env, tmp_path, n=20, units=4, repeats=1, server=server)
        _assert_the_mixed_chain_is_in_the_ledger()
        single = single_submit.run(bench_env, tmp_path, requests=16, clients=8, server=server)

    for name in ("a", "a_2proc", "a_mixed", "b", "c1", "c2", "m1", "m2", "c2_vs_a", "cost_c1"):
        assert _positive(bulk[name]), (name, bulk[name])
    for name in ("a_cpu_us", "b_cpu_us", "c1_cpu_us", "m2_cpu_us"):
        # CPU is read from /proc in clock ticks: at this N it may round to 0, never below.
        assert math.isfinite(bulk[name]) and bulk[name] >= 0, (name, bulk[name])
    assert bulk["mixed_n"] == 2 * 4 * 5
    assert 550 < bulk["envelope_bytes"] < 800  # realistic size, as docs/PERFORMANCE.md claims
    assert "entries/s" in ingest.report(bulk)

    for name in ("submit_p50", "submit_p99", "healthz_p50", "healthz_p99", "p50_vs_healthz"):
        assert _positive(single[name]), (name, single[name])
    assert single["submit_p99"] >= single["submit_p50"]
    assert single["requests"] == 16
    assert "p50" in single_submit.report(single)
    per_client = single_submit.WARMUP + 2
    assert LogRecord.objects.filter(entry_type=EntryType.INTAKE).count() == 8 * per_client
    assert Batch.objects.count() == 8 * per_client


def _assert_the_mixed_chain_is_in_the_ledger() -> None:
    # The bulk benchmark's last run (mixed scenario, 2 clients) is what the ledger holds:
    # 2 lanes x 4 units of intake, dismantling, ship, receive, HPMS, after 6 key records.
    types = list(LogRecord.objects.values_list("entry_type", flat=True))
    assert types.count(EntryType.KEY_REGISTERED) == 6
    for kind, count in [("intake", 8), ("transform", 16), ("ship", 8), ("receive", 8)]:
        assert types.count(kind) == count, kind
    assert Shipment.objects.filter(receive_seq__isnull=False).count() == 8
    assert Batch.objects.filter(material="alloy_powder", status=BatchStatus.ACTIVE).count() == 8
    assert Batch.objects.filter(material="magnet_scrap", status=BatchStatus.DEPLETED).count() == 8
    assert EntryBatch.objects.count() == 8 * (1 + 3 + 1 + 1 + 2)
    assert Access.objects.filter(batch__material="magnet_scrap").count() == 16  # sender and receiver


def test_make_bench_without_database_url_explains_what_it_needs() -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "BENCH_DATABASE_URL"}}
    done = subprocess.run(
        [sys.executable, "bench/run_all.py"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "DATABASE_URL" in done.stderr and BENCH_DB_NAME in done.stderr
