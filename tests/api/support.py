"""Helpers for the API tests: problem+json assertions, "nothing is written", small chains.

Everything here goes through the public HTTP interface (the personas' API clients) and reads
the database only to check what was or was not written.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from accounts.models import SigningKey
from ledger.errors import PROBLEMS
from ledger.models import Access, Batch, EntryBatch, LogRecord, Shipment
from tests.conftest import EV_MAGNET_PPM, Persona, new_batch_id

PROBLEM_CONTENT_TYPE = "application/problem+json"
ENTRIES = "/api/v1/entries/"
CERT = "ab" * 32  # a SHA-256 digest standing in for a certificate kept off the log

_UNSET: Any = object()


def assert_problem(
    response: Any,
    status: int,
    code: str,
    pointer: str | None = _UNSET,
    index: int | None = None,
) -> dict[str, Any]:
    """Assert an RFC 9457 problem+json response naming ``code``; return its body.

    ``pointer`` is checked against ``errors[0].pointer``; ``None`` means the problem is
    about the whole document and carries no field path. ``index`` is the bulk position.
    """
    assert response.status_code == status, response.content
    assert response["Content-Type"].split(";")[0].strip() == PROBLEM_CONTENT_TYPE
    body: dict[str, Any] = response.json()
    assert body["type"] == f"/problems/{code}", body
    assert body["code"] == code, body
    assert body["status"] == status
    if code in PROBLEMS:
        assert body["title"] == PROBLEMS[code][1]
    else:
        assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"].strip()
    if pointer is None:
        assert not body.get("errors") or body["errors"][0]["pointer"] == "", body
    elif pointer is not _UNSET:
        assert body["errors"][0]["pointer"] == pointer, body
        assert body["errors"][0]["detail"]
    if index is None:
        assert "index" not in body, body
    else:
        assert body["index"] == index, body
    return body


def ledger_state() -> dict[str, Any]:
    """Everything a submission may write: records, batches, shipments, links, grants, keys."""
    return {
        "records": list(LogRecord.objects.order_by("seq").values_list("seq", "leaf_hash")),
        "batches": list(Batch.objects.order_by("id").values()),
        "shipments": list(Shipment.objects.order_by("ship_seq").values()),
        "links": list(EntryBatch.objects.order_by("pk").values_list("record_id", "batch_id", "role")),
        "access": sorted(Access.objects.values_list("organisation_id", "batch_id", "via")),
        "keys": list(SigningKey.objects.order_by("key_id").values()),
    }


@contextmanager
def nothing_written() -> Iterator[None]:
    """Assert that the block leaves the log and every projection of it exactly as it was."""
    before = ledger_state()
    count = LogRecord.objects.count()
    yield
    assert LogRecord.objects.count() == count, "a rejected submission appended records"
    after = ledger_state()
    for name, rows in before.items():
        assert after[name] == rows, f"a rejected submission changed {name}"


def post(persona: Persona, body: Any) -> Any:
    """POST a JSON body to the entries endpoint with the persona's token."""
    return persona.client.post(ENTRIES, body, format="json")


def post_raw(persona: Persona, raw: bytes, content_type: str = "application/json") -> Any:
    """POST raw bytes: for bodies the JSON encoder would not produce."""
    return persona.client.generic("POST", ENTRIES, raw, content_type=content_type)


def bulk(persona: Persona, envelopes: list[dict[str, Any]]) -> Any:
    return post(persona, {"entries": envelopes})


def batch_of(persona: Persona, batch_id: str) -> dict[str, Any]:
    """GET /api/v1/batches/{id}/ as ``persona``; the batch must be visible."""
    response = persona.client.get(f"/api/v1/batches/{batch_id}/")
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


def intake(
    persona: Persona,
    mass_g: int = 10_000,
    *,
    origin: str = "post_consumer",
    material: str = "magnet_scrap",
    composition: dict[str, int] | None = EV_MAGNET_PPM,
    batch: str | None = None,
    **extra: Any,
) -> str:
    """Bring a new batch into the chain through the API; return its id."""
    batch = batch or new_batch_id(persona.org.slug)
    fields: dict[str, Any] = {"batch": batch, "material": material, "mass_g": mass_g, "origin": origin}
    if composition is not None:
        fields["composition"] = composition
    if origin == "primary":
        fields.setdefault("supplier", "Mine Co")
        fields.setdefault("certificate_sha256", CERT)
    fields.update(extra)
    persona.submit_ok("intake", **fields)
    return batch


def ship(sender: Persona, recipient: Persona, batch: str, mass_g: int) -> dict[str, Any]:
    return sender.submit_ok("ship", batch=batch, mass_g=mass_g, to_org=recipient.org.slug)


def hand_over(sender: Persona, recipient: Persona, batch: str, mass_g: int) -> None:
    """Ship the whole batch and have the recipient receive exactly what was shipped."""
    ship(sender, recipient, batch, mass_g)
    recipient.submit_ok("receive", batch=batch, mass_g=mass_g)


def transform(
    persona: Persona,
    inputs: list[tuple[str, int]],
    outputs: list[tuple[str, int]],
    *,
    process: str = "merge",
    material: str = "alloy_powder",
    composition: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Submit a transform from (batch, grams) inputs to new (batch, grams) outputs."""
    outs: list[dict[str, Any]] = []
    for batch, mass in outputs:
        out: dict[str, Any] = {"batch": batch, "material": material, "mass_g": mass}
        if composition is not None:
            out["composition"] = composition
        outs.append(out)
    return persona.submit_ok(
        "transform",
        process=process,
        inputs=[{"batch": b, "mass_g": m} for b, m in inputs],
        outputs=outs,
    )


def resigned(persona: Persona, envelope: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of ``envelope`` whose payload has ``changes`` applied and is signed again."""
    payload = copy.deepcopy(envelope["payload"])
    payload.update(changes)
    return persona.sign(payload)
