"""Exit 3 for an unreachable server; a lost answer is retried and comes back replayed."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.models import LogRecord
from tests.client.support import intake_payload, read_jsonl, run_cli
from tests.conftest import World


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_closed_port_exits_3_quickly_with_one_attempt(tmp_path: Path) -> None:
    src = tmp_path / "envelope.json"
    src.write_text(json.dumps({"payload": {}, "key_id": "0" * 64, "signature": "A" * 86}), encoding="utf-8")
    started = time.monotonic()
    result = run_cli(
        "submit", "--retries", "1", "--url", f"http://127.0.0.1:{closed_port()}", "--token", "t", str(src)
    )
    assert result.returncode == 3
    assert "could not reach" in result.stderr and "1 attempt" in result.stderr
    assert time.monotonic() - started < 10


class LosingProxy(ThreadingHTTPServer):
    """Forwards to the live server; drops the answer to the first ``lose`` requests, so the
    client sees a connection closed after the server has recorded the entry."""

    def __init__(self, upstream: str, lose: int) -> None:
        self.upstream = upstream
        self.lose = lose
        self.seen = 0
        super().__init__(("127.0.0.1", 0), _ProxyHandler)


class _ProxyHandler(BaseHTTPRequestHandler):
    server: LosingProxy

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        headers = {k: v for k, v in self.headers.items() if k.lower() in {"authorization", "content-type"}}
        answer = httpx.post(self.server.upstream + self.path, content=body, headers=headers)
        self.server.seen += 1
        if self.server.seen <= self.server.lose:
            self.close_connection = True  # recorded upstream, but the client never hears it
            return
        self.send_response(answer.status_code)
        self.send_header("Content-Type", answer.headers["Content-Type"])
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def proxy(live_server: Any) -> Iterator[LosingProxy]:
    server = LosingProxy(live_server.url, lose=1)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_lost_answer_is_retried_and_the_entry_is_written_once(
    world: World, proxy: LosingProxy, tmp_path: Path
) -> None:
    r = world.recycler
    envelope = r.sign(intake_payload(r))
    src = tmp_path / "envelope.json"
    src.write_text(json.dumps(envelope), encoding="utf-8")
    url = f"http://127.0.0.1:{proxy.server_address[1]}"

    result = run_cli("submit", "--url", url, "--token", r.token, str(src))

    assert result.returncode == 0, result.stderr
    assert proxy.seen == 2
    (receipt,) = read_jsonl(result.stdout)
    assert receipt["replayed"] is True  # the first attempt had recorded it
    assert LogRecord.objects.filter(entry_id=envelope["payload"]["id"]).count() == 1
    assert LogRecord.objects.get(entry_id=envelope["payload"]["id"]).seq == receipt["seq"]


def test_without_retries_a_lost_answer_exits_3(world: World, proxy: LosingProxy, tmp_path: Path) -> None:
    r = world.recycler
    src = tmp_path / "envelope.json"
    src.write_text(json.dumps(r.sign(intake_payload(r))), encoding="utf-8")
    url = f"http://127.0.0.1:{proxy.server_address[1]}"
    result = run_cli("submit", "--retries", "1", "--url", url, "--token", r.token, str(src))
    assert result.returncode == 3
    assert proxy.seen == 1
