"""The production shape, run for real: gunicorn started with deploy/gunicorn.conf.py and a
Celery worker on Redis, both as separate processes against this test's PostgreSQL database,
driven over HTTP by the magledger client (sign, submit) exactly as an integrator would.

Needs PostgreSQL and Redis (skipped locally without DATABASE_URL/REDIS_URL, a failure under
CI). The processes see what the test writes because the test uses transactional_db: rows
are committed, not hidden in a transaction that is rolled back.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import httpx
import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection

from accounts.models import Role
from ledger import logkey
from ledger.celery import app as celery_app
from ledger.client.http import LedgerClient
from ledger.models import Batch, LogRecord
from ledger.protocol.canonical import canonical_bytes
from ledger.protocol.hashing import ZERO_HASH_HEX, leaf_hash
from ledger.protocol.keys import generate_private_key, write_private_key_file
from ledger.protocol.merkle import root_from_leaves
from ledger.protocol.note import verify_checkpoint
from tests.conftest import EV_MAGNET_PPM, Persona, make_persona, need_service, new_batch_id

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BOOT_TIMEOUT = 30.0  # seconds for gunicorn to answer /healthz and the worker to answer a ping
BULK = 200


@dataclass
class Process:
    """A subprocess we started, with its combined stdout/stderr going to a file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    def output(self) -> str:
        if not self.log_file.closed:
            self.log_file.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        """SIGTERM (graceful: gunicorn stops its workers, Celery finishes its task), then SIGKILL."""
        try:
            if self.popen.poll() is None:
                self.popen.send_signal(signal.SIGTERM)
                try:
                    self.popen.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    # The whole process group: gunicorn's workers too, should the master be stuck.
                    os.killpg(self.popen.pid, signal.SIGKILL)
                    self.popen.wait(timeout=5)
        finally:
            self.log_file.close()


def start(name: str, argv: list[str], env: dict[str, str], tmp_path: Path) -> Process:
    """Start ``argv`` from the repository root, its output going to ``tmp_path/NAME.log``."""
    log_path = tmp_path / f"{name}.log"
    log_file = log_path.open("wb")
    # A session of its own, so that teardown can kill the process group and nothing else.
    popen = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
    )
    return Process(name, popen, log_path, log_file)


@dataclass
class Stack:
    """The running production shape."""

    url: str
    web: Process
    worker: Process
    worker_name: str
    queue: str


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the kernel's choice for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def database_url(settings_dict: dict[str, Any]) -> str:
    """A DATABASE_URL for the database this test runs on (pytest-django's test database)."""
    user = quote(settings_dict.get("USER") or "", safe="")
    password = quote(settings_dict.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    # A Unix-socket directory as host is percent-encoded; dj-database-url decodes it.
    host = quote(settings_dict.get("HOST") or "", safe="")
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    return f"postgres://{credentials}{host}{port}/{quote(settings_dict['NAME'], safe='')}"


def redis_answers(url: str) -> bool:
    """Whether a Redis server answers PING at ``url``."""
    if not url:
        return False
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


def wait_until_healthy(stack_url: str, processes: list[Process]) -> None:
    """Until /healthz reports the database reachable; fail early if a process exits."""
    deadline = time.monotonic() + BOOT_TIMEOUT
    last = "no answer"
    while time.monotonic() < deadline:
        for process in processes:
            if process.popen.poll() is not None:
                pytest.fail(f"{process.name} exited with {process.popen.returncode}:\n{process.output()}")
        try:
            response = httpx.get(f"{stack_url}/healthz", timeout=2)
            if response.status_code == 200 and response.json() == {"status": "ok", "database": "ok"}:
                return
            last = f"HTTP {response.status_code}: {response.text[:300]}"
        except httpx.TransportError as exc:
            last = repr(exc)
        time.sleep(0.2)
    pytest.fail(f"gunicorn not healthy after {BOOT_TIMEOUT:g} s ({last}):\n{processes[0].output()}")


def wait_for_worker(worker: Process, name: str) -> None:
    """Until the worker answers a ping sent through Redis (its broadcast queue)."""
    deadline = time.monotonic() + BOOT_TIMEOUT
    while time.monotonic() < deadline:
        if worker.popen.poll() is not None:
            pytest.fail(f"worker exited with {worker.popen.returncode}:\n{worker.output()}")
        replies = celery_app.control.ping(destination=[name], timeout=1.0)
        if any(name in reply for reply in replies):
            return
    pytest.fail(f"worker {name} did not answer a ping within {BOOT_TIMEOUT:g} s:\n{worker.output()}")


@pytest.fixture
def production(transactional_db: None, settings: Any, tmp_path: Path, monkeypatch: Any) -> Iterator[Stack]:
    """gunicorn (deploy/gunicorn.conf.py) and a Celery worker on this test's database and Redis."""
    need_service("PostgreSQL", connection.vendor == "postgresql")
    need_service("Redis", redis_answers(settings.REDIS_URL))

    # One log key for the test process (which registers the personas' keys, signed by it)
    # and the server (which reports it at /api/v1/log/ and signs with it from now on).
    monkeypatch.delenv("LEDGER_LOG_KEY", raising=False)
    key_file = tmp_path / "log-key.pem"
    write_private_key_file(generate_private_key(), key_file)
    settings.LEDGER_LOG_KEY_FILE = str(key_file)
    settings.LEDGER_LOG_KEY_AUTOCREATE = False
    logkey.log_private_key.cache_clear()

    port = free_port()
    # A queue and node name of this run's own: other test runs may share this Redis, and
    # their workers must not take our task, nor ours theirs.
    run = secrets.token_hex(4)
    queue = f"deploy-test-{run}"
    worker_name = f"deploy-test-{run}@{socket.gethostname()}"
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"LEDGER_LOG_KEY", "CELERY_TASK_ALWAYS_EAGER", "SQLITE_PATH", "WEB_CONCURRENCY"}
    }
    env.update(
        DATABASE_URL=database_url(connection.settings_dict),
        REDIS_URL=settings.REDIS_URL,
        DEBUG="false",
        SECRET_KEY=secrets.token_hex(32),
        ALLOWED_HOSTS="127.0.0.1",
        LEDGER_VAR_DIR=str(tmp_path / "var"),
        LEDGER_LOG_KEY_FILE=str(key_file),
        LEDGER_LOG_KEY_AUTOCREATE="false",
        LEDGER_LOG_ORIGIN=settings.LEDGER_LOG_ORIGIN,
        BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY="2",
        PYTHONUNBUFFERED="1",
    )
    started: list[Process] = []
    try:
        web = start(
            "gunicorn",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                str(ROOT / "deploy" / "gunicorn.conf.py"),
                "ledger.wsgi",
            ],
            env,
            tmp_path,
        )
        started.append(web)
        worker = start(
            "worker",
            [sys.executable, "-m", "celery", "-A", "ledger.celery", "worker", "--pool=solo", "-c", "1",
             "-l", "info", "-n", worker_name, "-Q", queue, "--without-gossip", "--without-mingle"],
            env,
            tmp_path,
        )  # fmt: skip
        started.append(worker)
        stack = Stack(f"http://127.0.0.1:{port}", web, worker, worker_name, queue)
        wait_until_healthy(stack.url, started)
        wait_for_worker(worker, worker_name)
        yield stack
    finally:
        # Stop every process before anything else can go wrong.
        for process in started:
            process.stop()
        for process in started:
            # Shown by pytest only when the test fails.
            print(f"----- {process.name} (exit {process.popen.returncode}) -----\n{process.output()}")


def task_result(worker: Process, task: str, task_id: str, timeout: float = 20.0) -> str:
    """The return value the worker logged for task ``task_id``: proof that it received the
    task from Redis and ran it (there is no result backend to ask)."""
    done = re.compile(rf"Task {re.escape(task)}\[{re.escape(task_id)}\] succeeded in [0-9.e-]+s: (.*)")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if match := done.search(worker.output()):
            return match.group(1).strip()
        assert worker.popen.poll() is None, "the worker died"
        time.sleep(0.2)
    pytest.fail(f"the worker did not run {task}[{task_id}] within {timeout:g} s")


def magledger(*args: str) -> str:
    """Run the magledger command line as an integrator would; return its stdout."""
    # The installed console script when there is one (it tests the entry point too).
    script = Path(sys.executable).with_name("magledger")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "ledger.client.cli"]
    result = subprocess.run(
        [*command, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"magledger {args[0]} exited {result.returncode}: {result.stderr}"
    return result.stdout


@dataclass
class Integrator:
    """A persona driving the server through the magledger client, with its key in a file."""

    persona: Persona
    key_file: Path
    workdir: Path
    url: str

    def payload(self, type_: str, **fields: Any) -> dict[str, Any]:
        # No id and no occurred_at: `sign --new-id --now` fills them in.
        return {"type": type_, "org": self.persona.org.slug, "facility": self.persona.facility.code, **fields}

    def sign_and_submit(
        self, payloads: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Sign the payloads (one JSON file, or JSONL for several) and submit them; return
        the envelopes and the receipts the client printed."""
        name = uuid.uuid4().hex
        source = self.workdir / f"{name}.{'json' if len(payloads) == 1 else 'jsonl'}"
        if len(payloads) == 1:
            source.write_text(json.dumps(payloads[0]), encoding="utf-8")
        else:
            source.write_text("".join(json.dumps(p) + "\n" for p in payloads), encoding="utf-8")
        signed = magledger("sign", "--key", str(self.key_file), "--new-id", "--now", str(source))
        envelopes_file = self.workdir / f"{name}.envelopes.jsonl"
        envelopes_file.write_text(signed, encoding="utf-8")
        printed = magledger(
            "submit", "--url", self.url, "--token", self.persona.token, "--retries", "1", str(envelopes_file)
        )
        envelopes = [json.loads(line) for line in signed.splitlines()]
        receipts = [json.loads(line) for line in printed.splitlines()]
        assert len(receipts) == len(envelopes)
        return envelopes, receipts


def integrator(persona: Persona, stack: Stack, tmp_path: Path) -> Integrator:
    """The persona as an integrator: its signing key written to a PEM file for the client."""
    key_file = tmp_path / f"{persona.org.slug}.pem"
    write_private_key_file(persona.key, key_file)
    return Integrator(persona, key_file, tmp_path, stack.url)


def read_entries(client: LedgerClient, after: int | None = None) -> list[dict[str, Any]]:
    """Every record the client may see (after seq ``after``), following the cursor pages."""
    path: str | None = "/api/v1/entries/" + (f"?after={after}" if after is not None else "")
    records: list[dict[str, Any]] = []
    pages = 0
    while path:
        page = client.get(path)
        records.extend(page["results"])
        pages += 1
        assert pages < 100, "the cursor does not advance"
        # DRF's cursor links are absolute; the client joins paths to its base URL.
        path = page["next"] and page["next"].removeprefix(client.base_url)
    return records


def test_gunicorn_and_a_celery_worker_serve_the_ledger_over_postgresql_and_redis(
    production: Stack, tmp_path: Path
) -> None:
    recycler = make_persona("EV Take-Back GmbH", "evtb", Role.PROCESSOR)
    processor = make_persona("HPMS Works Ltd", "hpms", Role.PROCESSOR, "GB")
    auditor = make_persona("CertBody", "certbody", Role.AUDITOR)
    r = integrator(recycler, production, tmp_path)
    p = integrator(processor, production, tmp_path)

    # The server signs with the log key the test process registered the personas' keys with.
    with LedgerClient(production.url, attempts=1) as anonymous:
        log_info = anonymous.get("/api/v1/log/")
    assert log_info["log_key_id"] == logkey.log_key_id()
    assert log_info["origin"] == django_settings.LEDGER_LOG_ORIGIN

    # A custody chain, one entry per request: take-back, dismantling, shipment, receipt.
    motors, magnets, steel = new_batch_id("evtb-motors"), new_batch_id("evtb-mag"), new_batch_id("evtb-steel")
    chain = [
        (r, r.payload("intake", batch=motors, material="eol_product", mass_g=1_200_000,
                      origin="post_consumer", product="ev_traction_motor", units=20)),
        (r, r.payload("transform", process="dismantling",
                      inputs=[{"batch": motors, "mass_g": 1_200_000}],
                      outputs=[{"batch": magnets, "material": "magnet_scrap", "mass_g": 36_000,
                                "composition": EV_MAGNET_PPM},
                               {"batch": steel, "material": "residue", "mass_g": 1_150_000}],
                      losses=[{"kind": "dust", "mass_g": 14_000}])),
        (r, r.payload("ship", batch=magnets, mass_g=36_000, to_org=processor.org.slug)),
        (p, p.payload("receive", batch=magnets, mass_g=35_900)),
    ]  # fmt: skip
    sent: list[dict[str, Any]] = []
    receipts: list[dict[str, Any]] = []
    for who, payload in chain:
        envelopes, answers = who.sign_and_submit([payload])
        sent += envelopes
        receipts += answers
    assert [x["type"] for x in receipts] == ["intake", "transform", "ship", "receive"]
    assert not any(x["replayed"] for x in receipts)
    receive_seq = receipts[-1]["seq"]

    # A bulk of intakes in one JSONL file: one request, all or nothing.
    bulk_batches = [new_batch_id("evtb-bulk") for _ in range(BULK)]
    bulk_payloads = [
        r.payload("intake", batch=b, material="magnet_assembly", mass_g=5_000 + i, origin="post_consumer")
        for i, b in enumerate(bulk_batches)
    ]
    bulk_envelopes, bulk_receipts = r.sign_and_submit(bulk_payloads)
    sent += bulk_envelopes
    receipts += bulk_receipts
    assert [x["seq"] for x in bulk_receipts] == list(range(receive_seq + 1, receive_seq + 1 + BULK))
    assert [x["entry_id"] for x in bulk_receipts] == [e["payload"]["id"] for e in bulk_envelopes]

    # Read the whole log back over HTTP, as the auditor: gapless, hash-chained, and holding
    # byte for byte the envelopes the client signed, under the receipts it was given.
    with LedgerClient(production.url, auditor.token, attempts=1) as reader:
        records = read_entries(reader)
        size = reader.get("/api/v1/log/")["size"]
        assert len(records) == size == LogRecord.objects.count()
        previous = ZERO_HASH_HEX
        for seq, item in enumerate(records):
            record = item["record"]
            assert record["seq"] == item["seq"] == seq
            assert record["prev"] == previous, f"chain broken at seq {seq}"
            previous = leaf_hash(canonical_bytes(record)).hex()
            assert item["leaf_hash"] == previous
        by_seq = {item["seq"]: item for item in records}
        for envelope, receipt in zip(sent, receipts, strict=True):
            assert by_seq[receipt["seq"]]["record"]["envelope"] == envelope
            assert by_seq[receipt["seq"]]["leaf_hash"] == receipt["leaf_hash"]

        # ?after= pages through exactly what came after the receipt: the bulk, in order.
        after = read_entries(reader, after=receive_seq)
        assert [x["seq"] for x in after] == [x["seq"] for x in bulk_receipts]
        assert {x["type"] for x in after} == {"intake"}

    # Custody moved with the receipt, on the server and in the database.
    with LedgerClient(production.url, processor.token, attempts=1) as client:
        batch = client.get(f"/api/v1/batches/{magnets}/")
    assert (batch["custodian"], batch["remaining_g"], batch["in_transit"]) == (
        processor.org.slug,
        35_900,
        None,
    )
    assert batch["origin"]["elements"]["Dy"]["post_consumer"] == 1.0
    with LedgerClient(production.url, recycler.token, attempts=1) as client:
        last = client.get(f"/api/v1/batches/{bulk_batches[-1]}/")
    assert (last["custodian"], last["remaining_g"]) == (recycler.org.slug, 5_000 + BULK - 1)
    assert Batch.objects.filter(id__in=bulk_batches, custodian=recycler.org).count() == BULK

    # The worker consumes from Redis: it answered a ping (in the fixture) and runs tasks sent
    # through the broker against the same database: the log size...
    task_id = celery_app.send_task("ledger.log_size", queue=production.queue).id
    assert task_result(production.worker, "ledger.log_size", task_id) == str(size)
    # ...and a checkpoint, signed with the shared log key, that the web process then serves:
    # it verifies under the published vkey and commits to exactly the leaves read back.
    task_id = celery_app.send_task("ledger.publish_checkpoint", queue=production.queue).id
    assert task_result(production.worker, "ledger.publish_checkpoint", task_id) == str(size)
    note = httpx.get(f"{production.url}/api/v1/log/checkpoint/", timeout=10).text
    checkpoint = verify_checkpoint(note, [log_info["vkey"]], origin=django_settings.LEDGER_LOG_ORIGIN)
    assert checkpoint.size == size
    assert checkpoint.root == root_from_leaves([bytes.fromhex(item["leaf_hash"]) for item in records])

    # Both served to the end; gunicorn's access log (on stdout) shows the submissions.
    assert production.web.popen.poll() is None and production.worker.popen.poll() is None
    assert '"POST /api/v1/entries/ HTTP/1.1" 201' in production.web.output()
