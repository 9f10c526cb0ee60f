"""Pedigree of a batch: its provenance graph back to every intake, and its recycled
content per CRMA element, split post-consumer / pre-consumer / primary.

The graph is read in a bounded number of queries: one per generation to find the
ancestors, then one each for batches, links and records.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ledger.models import Batch, EntryBatch, EntryType, LinkRole, LogRecord
from ledger.origin import CRMA_ELEMENTS, ORIGINS
from ledger.services import ancestors_of


def recycled_content(batch: Batch) -> dict[str, Any]:
    """Per CRMA element: grams in the batch (from its composition) and the share of each
    origin. Unknown stays unknown: no composition means no grams; an unknown share is null."""
    elements = {}
    for element in CRMA_ELEMENTS:
        share = batch.origin["elements"].get(element)
        ppm = None if batch.composition is None else batch.composition.get(element, 0)
        grams = None if ppm is None else batch.remaining_g * ppm / 1_000_000
        if ppm == 0:
            continue  # the element is not in this material; CRMA asks only about what is there
        elements[element] = {
            "grams": None if grams is None else round(grams, 3),
            "shares": share,
            "post_consumer_g": None
            if grams is None or share is None
            else round(grams * share["post_consumer"], 3),
            "status": "unassayed" if ppm is None else ("unknown" if share is None else "known"),
        }
    return {
        "method": "proportional",
        "basis": "remaining_g",
        "mass": batch.origin["mass"],
        "elements": elements,
    }


def pedigree_of(batch: Batch, user: Any) -> dict[str, Any]:
    """The provenance graph of ``batch`` as ``user`` may see it.

    An OEM or auditor sees the whole upstream; anyone else only the batches and entries
    the scoped querysets allow (DESIGN "Who sees what"): other batches are left out and
    edges to them carry ``batch: null``; other organisations' steps are left out.
    """
    upstream = ancestors_of({batch.id})
    ids = upstream | {batch.id}
    batches = {
        b.id: b
        for b in Batch.objects.visible_to(user).filter(id__in=ids).select_related("custodian", "facility")
    }
    visible_records = LogRecord.objects.visible_to(user).filter(links__batch_id__in=ids)
    links = list(
        EntryBatch.objects.filter(
            batch_id__in=ids,
            role__in=[LinkRole.INPUT, LinkRole.OUTPUT],
            record_id__in=visible_records.values("seq"),
        )
        .select_related("record")
        .order_by("record_id")
    )
    by_record: dict[int, dict[str, list[EntryBatch]]] = defaultdict(lambda: {"inputs": [], "outputs": []})
    records = {}
    for link in links:
        by_record[link.record_id]["inputs" if link.role == LinkRole.INPUT else "outputs"].append(link)
        records[link.record_id] = link.record

    def shown(batch_id: str) -> str | None:
        return batch_id if batch_id in batches else None

    steps = []
    for seq, parts in sorted(by_record.items()):
        record = records[seq]
        payload = record.payload
        step: dict[str, Any] = {
            "seq": seq,
            "type": record.entry_type,
            "org": payload["org"],
            "occurred_at": payload["occurred_at"],
            "inputs": [{"batch": shown(link.batch_id), "mass_g": link.mass_g} for link in parts["inputs"]],
            "outputs": [{"batch": shown(link.batch_id), "mass_g": link.mass_g} for link in parts["outputs"]],
        }
        if record.entry_type == EntryType.TRANSFORM:
            step["process"] = payload["process"]
            step["losses"] = payload.get("losses", [])
        elif record.entry_type == EntryType.INTAKE:
            step["origin"] = payload["origin"]
        steps.append(step)

    nodes = [
        {
            "id": b.id,
            "material": b.material,
            "mass_g": b.mass_g,
            "remaining_g": b.remaining_g,
            "custodian": b.custodian.slug,
            "composition": b.composition,
            "origin": b.origin,
        }
        for b in sorted(batches.values(), key=lambda b: b.created_seq)
    ]
    intakes = [s for s in steps if s["type"] == EntryType.INTAKE]
    origin_mass = {o: sum(s["outputs"][0]["mass_g"] for s in intakes if s["origin"] == o) for o in ORIGINS}
    return {
        "batch": batch.id,
        "recycled_content": recycled_content(batch),
        "intakes_by_origin_g": origin_mass,
        "nodes": nodes,
        "steps": steps,
        "redacted_batches": len(ids) - len(nodes),
    }
