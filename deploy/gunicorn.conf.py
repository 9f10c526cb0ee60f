"""gunicorn configuration for the magnet ledger: `gunicorn -c deploy/gunicorn.conf.py ledger.wsgi`.

Read by gunicorn at start. Two settings come from the environment (deploy/ENVIRONMENT.md):
BIND and WEB_CONCURRENCY. Anything else can be overridden on the command line, which takes
precedence over this file (for example `--timeout 120`).
"""

from __future__ import annotations

import os


def _env_int(name: str, default: int) -> int:
    """An integer from the environment; refuse malformed values at start rather than guess."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not an integer.") from None
    if value < 1:
        raise SystemExit(f"{name}={raw!r} must be at least 1.")
    return value


def _cores() -> int:
    """CPUs this process may run on (honours taskset/cpusets, unlike os.cpu_count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# Loopback by default: a reverse proxy (nginx, Caddy) terminates TLS, buffers slow clients
# (sync workers must not be tied up by them) and serves /static/. The container image sets
# BIND=0.0.0.0:8000.
bind = os.environ.get("BIND", "127.0.0.1:8000").split(",")

# The usual 2 x cores + 1 for sync workers, capped: every worker keeps a PostgreSQL
# connection open (DB_CONN_MAX_AGE) and appends to the log are serialised by one sequencer,
# so beyond a dozen workers per host more processes add connections, not throughput.
# Scale out with more hosts instead (deploy/README.md).
workers = _env_int("WEB_CONCURRENCY", min(2 * _cores() + 1, 12))
worker_class = "sync"

# A bulk of 1,000 entries takes seconds on a busy server; the magledger client waits 60 s.
# A worker silent for longer than this is killed and restarted.
timeout = 60
graceful_timeout = 30
keepalive = 5

# Recycle workers now and then so that a slow leak (in us or a library) cannot grow forever;
# the jitter keeps them from restarting all at once.
max_requests = 2000
max_requests_jitter = 200

# Load Django once in the master, then fork: workers start fast, share memory copy-on-write
# and a broken configuration (no SECRET_KEY, bad DATABASE_URL syntax) stops the master at
# start instead of making workers crash in a loop. Safe here because nothing opens a
# connection at import time: database connections, the Redis pool and the log key (cached
# per process by ledger.logkey) are all created lazily, after the fork, in each worker.
# The price: SIGHUP re-forks workers from the old code, so deploy new code with a restart.
preload_app = True

# Access log and error log on stdout/stderr: journald or the container runtime collects them.
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Combined log format plus the time taken in milliseconds. Tokens travel in the
# Authorization header, which is not logged.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms'

proc_name = "magnet-ledger-web"

# The worker heartbeat file: on tmpfs, because a disk-backed /tmp (or an overlay filesystem
# in a container) can stall the heartbeat and get healthy workers killed. gunicorn makes its
# files there with mkstemp, so a shared directory is safe.
_SHM = "/dev/shm"  # noqa: S108
if os.path.isdir(_SHM):
    worker_tmp_dir = _SHM
