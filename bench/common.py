"""What the benchmarks share: the dedicated database, Django bootstrap, organisations and
keys, realistic signed envelopes, a gunicorn server on loopback and timing helpers.

Nothing here imports Django at module level, so ``bench/*.py`` can set the environment
(DATABASE_URL of the benchmark database, SECRET_KEY, the log key file) before Django loads.
The smoke test (tests/bench/) imports the same functions under pytest-django, where Django is
already configured against the test database.
"""

from __future__ import annotations

import json
import os
import platform
import random
import secrets
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

REPO = Path(__file__).resolve().parents[1]
BENCH_DB_NAME = "magnet_ledger_bench"
BENCH_REDIS_DB = 15

NEEDS = """\
The benchmarks need PostgreSQL: set DATABASE_URL, e.g.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/magnet_ledger make bench

They never write to the database DATABASE_URL names: they create (if missing), migrate and
wipe a dedicated database on the same server, named {bench_db!r} (override the whole URL
with BENCH_DATABASE_URL). The role in the URL must be allowed to CREATE DATABASE.
They also need Redis, the production broker (REDIS_URL, default redis://127.0.0.1:6379): the
soft-rule checks a submission enqueues go to database {redis_db} of that server (override
with BENCH_REDIS_URL), which is flushed after each run; no worker runs them meanwhile.
They start gunicorn on 127.0.0.1 (a free port) and send traffic to it only."""


# -- the database -----------------------------------------------------------------------


def bench_database_url(database_url: str) -> str:
    """The benchmark database on the same server as ``database_url`` (BENCH_DATABASE_URL
    wins). The benchmarks TRUNCATE the ledger, so they must never run on a real database."""
    override = os.environ.get("BENCH_DATABASE_URL", "")
    if override:
        return override
    parts = urlsplit(database_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + BENCH_DB_NAME, parts.query, parts.fragment))


def bench_redis_url(redis_url: str) -> str:
    """The Redis database the benchmarks' Celery messages go to (BENCH_REDIS_URL wins):
    database BENCH_REDIS_DB of the server ``redis_url`` names, so flushing it is safe."""
    override = os.environ.get("BENCH_REDIS_URL", "")
    if override:
        return override
    parts = urlsplit(redis_url or "redis://127.0.0.1:6379")
    return urlunsplit((parts.scheme, parts.netloc, f"/{BENCH_REDIS_DB}", parts.query, ""))


def redis_reachable(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


def flush_redis(url: str) -> None:
    """Drop the Celery messages a run left in the benchmark's Redis database."""
    import redis

    redis.Redis.from_url(url).flushdb()


def ensure_database(url: str) -> None:
    """Create the database ``url`` names if it does not exist (via the ``postgres`` database)."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, ""))
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


# Held for a whole run on a connection of its own, so that two runs (two engineers typing
# `make bench` at once) cannot wipe each other's rows mid-measurement.
RUN_LOCK_KEY = 0x4D4C42454E4348  # "MLBENCH"
_run_lock: Any = None


def take_run_lock(url: str) -> bool:
    """Take the benchmark database's run lock for the life of this process; False when
    another run holds it."""
    import psycopg

    global _run_lock
    conn = psycopg.connect(url, autocommit=True)
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", [RUN_LOCK_KEY]).fetchone()
    if not row or not row[0]:
        conn.close()
        return False
    _run_lock = conn
    return True


def database_url_of_connection() -> str:
    """A DATABASE_URL for the database Django is connected to now (under pytest-django
    that is the test database, which a gunicorn subprocess must use too)."""
    from django.db import connection

    s = connection.settings_dict
    auth = s["USER"] or ""
    if s.get("PASSWORD"):
        auth += ":" + s["PASSWORD"]
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or 5432
    return f"postgres://{auth}@{host}:{port}/{s['NAME']}"


def bootstrap_django(database_url: str, redis_url: str, work_dir: Path) -> dict[str, str]:
    """Point this process at the benchmark database and broker, with production settings
    (DEBUG off: with DEBUG on Django keeps every query in memory; a Redis broker: without
    one Celery tasks run inside the request), set up Django and migrate. Returns the
    environment a gunicorn subprocess needs."""
    from ledger.protocol.keys import generate_private_key, write_private_key_file

    key_file = work_dir / "log-key.pem"
    if not key_file.exists():
        write_private_key_file(generate_private_key(), key_file)
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "DEBUG": "false",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(40),
        "ALLOWED_HOSTS": "127.0.0.1",
        "LEDGER_LOG_KEY_FILE": str(key_file),
        "DJANGO_SETTINGS_MODULE": "ledger.settings",
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    return env


def app_tables(exclude: Sequence[str] = ()) -> list[str]:
    """Every table of the project's own apps (accounts, ledger, checks, ...), except those of
    the apps labelled in ``exclude``: what a wipe empties. Django's own tables stay."""
    from django.apps import apps

    tables = []
    for config in apps.get_app_configs():
        if config.label in exclude or not Path(config.path).resolve().is_relative_to(REPO):
            continue
        for model in config.get_models(include_auto_created=True):
            tables.append(model._meta.db_table)
    return tables


def truncate(tables: Sequence[str]) -> None:
    """TRUNCATE ... CASCADE. The append-only trigger refuses DELETE and UPDATE of log
    records, not TRUNCATE (ledger/migrations/0002): only a benchmark database may see this."""
    from django.db import connection

    quoted = ", ".join(connection.ops.quote_name(t) for t in tables)
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE")


def wipe_ledger() -> None:
    """Empty the log and everything derived from it; organisations and keys stay."""
    truncate(app_tables(exclude=["accounts"]))


# -- organisations ----------------------------------------------------------------------


@dataclass
class BenchOrg:
    """A submitting organisation as a client sees it; the key survives a reset, the
    token and database rows are made anew by ``reset_world``."""

    slug: str
    name: str
    role: str = "processor"
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate, repr=False)
    token: str = ""
    pk: int = 0

    @property
    def facility(self) -> str:
        return f"{self.slug}-site"

    @property
    def key_id(self) -> str:
        from ledger.protocol.keys import key_id, public_key_raw

        return key_id(public_key_raw(self.key))


def make_orgs(prefix: str, count: int) -> list[BenchOrg]:
    return [BenchOrg(slug=f"{prefix}{i}", name=f"Bench {prefix} {i}") for i in range(count)]


def reset_world(orgs: Sequence[BenchOrg]) -> None:
    """Wipe accounts and ledger, then create each organisation with a facility, an API user
    and token, and its signing key registered through the service (as tests/conftest does)."""
    from accounts.models import ApiToken, Facility, Organisation, User
    from ledger import services
    from ledger.protocol.envelope import b64url_encode
    from ledger.protocol.keys import public_key_raw

    truncate(app_tables())
    for org in orgs:
        row = Organisation.objects.create(slug=org.slug, name=org.name, role=org.role)
        Facility.objects.create(organisation=row, code=org.facility, name=f"{org.name} site", country="DE")
        user = User.objects.create_user(username=f"{org.slug}-api", organisation=row)
        _, org.token = ApiToken.issue(user, "bench")
        services.register_key(row, b64url_encode(public_key_raw(org.key)), label="bench")
        org.pk = row.pk


# -- realistic envelopes ----------------------------------------------------------------

# EV traction magnet grade (reference/domain.md 1.1), ppm by mass; varied a little per lot.
EV_MAGNET_PPM = {
    "Nd": 230000,
    "Pr": 60000,
    "Dy": 20000,
    "Tb": 3000,
    "B": 10000,
    "Co": 10000,
    "Cu": 1500,
    "Al": 2500,
    "Fe": 660000,
}


def _ppm(rng: random.Random) -> dict[str, int]:
    comp = {e: v + rng.randint(-v // 20, v // 20) for e, v in EV_MAGNET_PPM.items() if e != "Fe"}
    comp["Fe"] = 990000 - sum(comp.values())
    return comp


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class EnvelopeFactory:
    """Signed envelopes with realistic payloads, deterministic for a seed (except the
    clock: occurred_at lies in the recent past, as the service refuses the future)."""

    def __init__(self, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.now = datetime.now(UTC) - timedelta(minutes=10)
        self.tag = f"{seed:x}"

    def _id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _hex(self) -> str:
        return f"{self.rng.getrandbits(256):064x}"

    def _common(self, org: BenchOrg, type_: str, i: int) -> dict[str, Any]:
        return {
            "id": self._id(),
            "type": type_,
            "org": org.slug,
            "facility": org.facility,
            "occurred_at": _stamp(self.now - timedelta(seconds=i % 86400)),
        }

    def sign(self, org: BenchOrg, payload: dict[str, Any]) -> dict[str, Any]:
        from ledger.protocol.envelope import make_envelope

        return make_envelope(org.key, payload)

    def intake(self, org: BenchOrg, i: int) -> dict[str, Any]:
        """A take-back lot of end-of-life magnet scrap with its composition and a weighbridge
        ticket committed by digest: ~710 bytes as JCS envelope, 520 of them payload."""
        payload = self._common(org, "intake", i) | {
            "batch": f"{org.slug}-scrap-{self.tag}-{i:07d}",
            "material": self.rng.choice(("magnet_scrap", "magnet_assembly")),
            "mass_g": self.rng.randint(50_000, 2_500_000),
            "composition": _ppm(self.rng),
            "origin": "post_consumer",
            "product": "ev_traction_motor",
            "units": self.rng.randint(1, 60),
            "documents": [{"kind": "weighbridge_ticket", "sha256": self._hex()}],
        }
        return self.sign(org, payload)

    def intakes(self, orgs: Sequence[BenchOrg], n: int) -> dict[str, list[dict[str, Any]]]:
        """``n`` intake envelopes spread evenly over ``orgs``: slug -> envelopes."""
        out: dict[str, list[dict[str, Any]]] = {o.slug: [] for o in orgs}
        for i in range(n):
            org = orgs[i % len(orgs)]
            out[org.slug].append(self.intake(org, i))
        return out

    def chain_units(
        self, sender: BenchOrg, receiver: BenchOrg, units: int, first: int = 0
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The mixed scenario: per unit, the sender takes back motors (intake), dismantles
        them (transform: magnet scrap with composition + steel residue, dust loss) and ships
        the magnets; the receiver receives them and runs HPMS (transform to alloy powder).
        Returns (sender's envelopes, receiver's envelopes), 3 and 2 per unit, in order."""
        sent, received = [], []
        for u in range(first, first + units):
            tag = f"{self.tag}-{u:07d}"
            motors, magnets = f"{sender.slug}-mot-{tag}", f"{sender.slug}-mag-{tag}"
            steel, powder = f"{sender.slug}-stl-{tag}", f"{receiver.slug}-pwd-{tag}"
            count = self.rng.randint(5, 40)
            motor_g = count * self.rng.randint(55_000, 65_000)
            magnet_g = motor_g * 3 // 100
            dust_g = motor_g // 100
            shipped_g, arrived_g = magnet_g, magnet_g - self.rng.randint(0, magnet_g // 500)
            powder_g = arrived_g * 97 // 100
            comp = _ppm(self.rng)
            sent.append(
                self.sign(
                    sender,
                    self._common(sender, "intake", u)
                    | {
                        "batch": motors,
                        "material": "eol_product",
                        "mass_g": motor_g,
                        "origin": "post_consumer",
                        "product": "ev_traction_motor",
                        "units": count,
                        "documents": [{"kind": "weighbridge_ticket", "sha256": self._hex()}],
                    },
                )
            )
            sent.append(
                self.sign(
                    sender,
                    self._common(sender, "transform", u)
                    | {
                        "process": "dismantling",
                        "inputs": [{"batch": motors, "mass_g": motor_g}],
                        "outputs": [
                            {"batch": magnets, "material": "magnet_scrap", "mass_g": magnet_g}
                            | {"composition": comp},
                            {"batch": steel, "material": "residue", "mass_g": motor_g - magnet_g - dust_g},
                        ],
                        "losses": [{"kind": "dust", "mass_g": dust_g}],
                    },
                )
            )
            sent.append(
                self.sign(
                    sender,
                    self._common(sender, "ship", u)
                    | {"batch": magnets, "mass_g": shipped_g, "to_org": receiver.slug},
                )
            )
            received.append(
                self.sign(
                    receiver,
                    self._common(receiver, "receive", u)
                    | {
                        "batch": magnets,
                        "mass_g": arrived_g,
                        "documents": [{"kind": "weighbridge_ticket", "sha256": self._hex()}],
                    },
                )
            )
            received.append(
                self.sign(
                    receiver,
                    self._common(receiver, "transform", u)
                    | {
                        "process": "hpms",
                        "inputs": [{"batch": magnets, "mass_g": arrived_g}],
                        "outputs": [
                            {"batch": powder, "material": "alloy_powder", "mass_g": powder_g}
                            | {"composition": comp}
                        ],
                        "losses": [{"kind": "off_gas", "mass_g": arrived_g - powder_g}],
                    },
                )
            )
        return sent, received


def envelope_bytes(envelope: dict[str, Any]) -> bytes:
    """The envelope as a client sends it (compact JSON, not canonical)."""
    return json.dumps(envelope, separators=(",", ":")).encode()


def bulk_body(envelopes: Sequence[dict[str, Any]]) -> bytes:
    return json.dumps({"entries": list(envelopes)}, separators=(",", ":")).encode()


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- gunicorn on loopback ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Gunicorn:
    """gunicorn serving ledger.wsgi on 127.0.0.1 (a free port) with ``workers`` workers, as a
    context manager; waits for /healthz and stops the server (SIGTERM, then SIGKILL) on exit.

    With deploy/gunicorn.conf.py present it is the operator's configuration (sync workers,
    preload, access log) with the worker count and address overridden on the command line;
    without it, plain ``gunicorn ledger.wsgi -w WORKERS -b ADDRESS``.
    """

    CONFIG = REPO / "deploy" / "gunicorn.conf.py"

    def __init__(self, env: dict[str, str], work_dir: Path, workers: int = 2, extra: Sequence[str] = ()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = work_dir / f"gunicorn-{self.port}.log"
        config = ["-c", str(self.CONFIG)] if self.CONFIG.exists() else []
        self.command = [
            sys.executable,
            "-m",
            "gunicorn",
            *config,
            "ledger.wsgi",
            "-w",
            str(workers),
            "-b",
            f"127.0.0.1:{self.port}",
            *extra,
        ]
        self.env = {**os.environ, **env}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def described(self) -> str:
        """The command line, as the docs quote it."""
        return " ".join(["gunicorn", *self.command[3:]]).replace(str(REPO) + "/", "")

    def __enter__(self) -> Gunicorn:
        log = self.log.open("wb")
        self.process = subprocess.Popen(
            self.command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    # Warm every worker: the first request in each imports and compiles.
                    for _ in range(8):
                        httpx.get(f"{self.url}/healthz", timeout=5)
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.__exit__(None, None, None)
        raise RuntimeError(f"gunicorn did not come up; its log:\n{self.log.read_text()[-3000:]}")

    def __exit__(self, *exc: object) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


# -- CPU accounting ---------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds a process has used so far (None once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _proc_entries() -> Iterator[tuple[int, list[str]]]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                yield int(entry.name), (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue


def children_of(pid: int) -> list[int]:
    return [child for child, fields in _proc_entries() if int(fields[1]) == pid]


def backends_of(database: str) -> list[int]:
    """PostgreSQL backends serving ``database``: found by their process title
    ("postgres: 15/main: user database host(port) state"), so no query is needed."""
    found = []
    for pid, _ in _proc_entries():
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("postgres:") and f" {database} " in title:
            found.append(pid)
    return found


class CpuMeter:
    """CPU seconds used by a changing set of processes over a span (a sampler thread reads
    /proc every ``interval``, so a process that exits loses at most that much).

    Machines here are shared: wall-clock rates move with the neighbours' load, CPU time per
    entry much less. Where /proc is missing (not Linux) ``seconds`` stays NaN.
    """

    def __init__(self, find_pids: Callable[[], Iterable[int]], interval: float = 0.5) -> None:
        self.find_pids = find_pids
        self.interval = interval
        self.seconds = float("nan")
        self._start: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for pid in self.find_pids():
            cpu = process_cpu(pid)
            if cpu is not None:
                self._last[pid] = cpu

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> CpuMeter:
        if not Path("/proc/self/stat").exists():
            return self
        self._sample()
        self._start = dict(self._last)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._thread.is_alive():
            return
        self._stop.set()
        self._thread.join()
        self._sample()
        self.seconds = sum(cpu - self._start.get(pid, 0.0) for pid, cpu in self._last.items())


def server_pids(server: Gunicorn, database: str) -> Callable[[], list[int]]:
    """The processes that serve a request: gunicorn's master and workers, and the
    PostgreSQL backends of the benchmark database."""

    def find() -> list[int]:
        master = server.process.pid if server.process is not None else 0
        return [master, *children_of(master), *backends_of(database)]

    return find


def current_database() -> str:
    from django.db import connection

    name: str = connection.settings_dict["NAME"]
    return name


# -- reporting --------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def machine() -> dict[str, str]:
    """What the figures were measured on (they mean little without it)."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "load": load,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"
