"""Chains of custody for the checks: one leaky (a transit loss and an implausible HPMS
yield) and one clean, submitted through the API by the shared personas."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ledger.celery import app
from tests.conftest import EV_MAGNET_PPM, World, new_batch_id


@pytest.fixture(autouse=True)
def eager_checks() -> Iterator[None]:
    """Checks run in-process on commit (the embedded mode), even where REDIS_URL is set;
    the worker tests switch this off again to use a real worker."""
    before = app.conf.task_always_eager
    # The app reads Django settings under the CELERY_ namespace: the prefixed key wins.
    app.conf.update(task_always_eager=True, CELERY_TASK_ALWAYS_EAGER=True)
    yield
    app.conf.update(task_always_eager=before, CELERY_TASK_ALWAYS_EAGER=before)


@dataclass
class Chain:
    """What a chain submitted, and the flags (rule, subject) it should raise."""

    batches: dict[str, str] = field(default_factory=dict)
    seqs: dict[str, int] = field(default_factory=dict)
    expected: set[tuple[str, str]] = field(default_factory=set)


def submit_chain(world: World, *, leaky: bool) -> Chain:
    """Take-back -> dismantling -> ship -> receive -> HPMS -> ship -> receive.

    Leaky: 35,000 g of 36,000 g arrive (-2.8 %, transit loss) and HPMS turns them into
    24,500 g of powder (yield 0.70; the rest declared as losses, so the mass balances).
    Clean: -0.28 % in transit (inside ±0.5 %) and a 0.90 yield.
    """
    r, p, m = world.recycler, world.processor, world.maker
    c = Chain()
    motors, magnets, steel, powder = (
        new_batch_id(x) for x in ("evtb-motors", "evtb-mag", "evtb-steel", "hpms-pw")
    )
    c.batches.update(motors=motors, magnets=magnets, steel=steel, powder=powder)
    r.submit_ok(
        "intake",
        batch=motors,
        material="eol_product",
        mass_g=1_200_000,
        origin="post_consumer",
        product="ev_traction_motor",
        units=20,
    )
    r.submit_ok(
        "transform",
        process="dismantling",
        inputs=[{"batch": motors, "mass_g": 1_200_000}],
        outputs=[
            {"batch": magnets, "material": "magnet_scrap", "mass_g": 36_000, "composition": EV_MAGNET_PPM},
            {"batch": steel, "material": "residue", "mass_g": 1_150_000},
        ],
        losses=[{"kind": "dust", "mass_g": 14_000}],
    )
    c.seqs["ship"] = r.submit_ok("ship", batch=magnets, mass_g=36_000, to_org=p.org.slug)["seq"]
    received = 35_000 if leaky else 35_900
    c.seqs["receive"] = p.submit_ok("receive", batch=magnets, mass_g=received)["seq"]
    powder_g = 24_500 if leaky else 32_310
    c.seqs["hpms"] = p.submit_ok(
        "transform",
        process="hpms",
        inputs=[{"batch": magnets, "mass_g": received}],
        outputs=[
            {"batch": powder, "material": "alloy_powder", "mass_g": powder_g, "composition": EV_MAGNET_PPM}
        ],
        losses=[{"kind": "off_gas", "mass_g": received - powder_g}],
    )["seq"]
    p.submit_ok("ship", batch=powder, mass_g=powder_g, to_org=m.org.slug)
    m.submit_ok("receive", batch=powder, mass_g=powder_g)
    if leaky:
        c.expected = {
            ("transit_loss", f"ship:{c.seqs['ship']}"),
            ("yield_out_of_range", f"entry:{c.seqs['hpms']}"),
        }
    return c


def flag_keys(flags: Any) -> set[tuple[str, str]]:
    return {(f.rule, f.subject_key) for f in flags}


@dataclass
class Receiver:
    """A local HTTP server recording every POST; answers ``statuses`` in turn, then 200."""

    url: str = ""
    posts: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    def for_path(self, path: str) -> list[dict[str, Any]]:
        return [p for p in self.posts if p["path"] == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.posts.append({"path": self.path, "headers": dict(self.headers), "body": body})
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


def verify(post: dict[str, Any], secret: str) -> dict[str, Any]:
    """What a receiver does: recompute the HMAC of the raw body and compare in constant time."""
    expected = "sha256=" + hmac.new(secret.encode(), post["body"], hashlib.sha256).hexdigest()
    assert hmac.compare_digest(post["headers"]["X-Ledger-Signature"], expected)
    document: dict[str, Any] = json.loads(post["body"])
    return document
