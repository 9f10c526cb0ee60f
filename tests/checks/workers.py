"""Real Celery workers on real Redis and PostgreSQL for the worker tests.

The tests use their own Redis database number (REDIS_URL's host, database 11) so that a
worker of another test run on the same Redis never takes their messages, and the Celery
app is switched out of eager mode for their duration.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from django.db import connection, connections

from ledger.celery import app
from tests.conftest import need_service

ROOT = Path(__file__).resolve().parents[2]
REDIS_DB = 11


def redis_test_url() -> str:
    base = os.environ.get("REDIS_URL", "")
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, f"/{REDIS_DB}", "", ""))


def need_real_services() -> None:
    need_service("PostgreSQL (DATABASE_URL)", connection.vendor == "postgresql")
    available = False
    if os.environ.get("REDIS_URL"):
        try:
            available = bool(redis.Redis.from_url(redis_test_url(), socket_connect_timeout=2).ping())
        except redis.RedisError:
            available = False
    need_service("Redis (REDIS_URL)", available)


def set_conf(name: str, value: Any) -> None:
    """Change a Celery setting of the app. The app reads Django settings with the CELERY_
    namespace, where the prefixed key wins over the plain one: set both."""
    app.conf.update({name: value, f"CELERY_{name.upper()}": value})


def use_broker(url: str, **options: Any) -> None:
    """Point the Celery app at ``url`` from now on (dropping pooled connections)."""
    set_conf("broker_url", url)
    set_conf("broker_transport_options", options)
    # Drop the app's references only: kombu keeps one producer pool per broker URL, and
    # closing it here would break the next publish to that URL.
    app._pool = None
    app.amqp._producer_pool = None


def _close_db(**kwargs: Any) -> None:
    # The in-thread worker's own connections: close them, or the test database cannot be
    # flushed and dropped after the test.
    connections.close_all()


@contextmanager
def real_celery(settings: Any, visibility_timeout: int = 3600) -> Iterator[str]:
    """Non-eager Celery on the test Redis database, with an emptied queue."""
    need_real_services()
    url = redis_test_url()
    redis.Redis.from_url(url).flushdb()
    before = (app.conf.task_always_eager, app.conf.broker_url, app.conf.broker_transport_options)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    set_conf("task_always_eager", False)
    use_broker(url, visibility_timeout=visibility_timeout)
    task_postrun.connect(_close_db, weak=False)
    try:
        yield url
    finally:
        task_postrun.disconnect(_close_db)
        set_conf("task_always_eager", before[0])
        use_broker(before[1], **(before[2] or {}))


@contextmanager
def thread_worker() -> Iterator[Any]:
    """A real worker in a thread of the test process (solo pool), consuming the test queue."""
    with start_worker(
        app, pool="solo", concurrency=1, perform_ping_check=False, loglevel="WARNING"
    ) as worker:
        yield worker


def database_url() -> str:
    """DATABASE_URL of the test database, for a worker in another process."""
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def spawn_worker(name: str, log: Path, **env: str) -> subprocess.Popen[bytes]:
    """`celery worker` in its own process against the test database and Redis database."""
    full_env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_test_url(),
        "SECRET_KEY": "worker-test-only",
        "CHECKS_TEST_VISIBILITY_TIMEOUT": env.pop("visibility_timeout", "3600"),
        **env,
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.checks.worker_app",
            "worker",
            "--pool",
            "solo",
            "--concurrency",
            "1",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            f"{name}@%h",
            "--loglevel",
            "INFO",
        ],
        cwd=ROOT,
        env=full_env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll until ``condition()`` is truthy; fail the test with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)
