"""The verifiable log: the Merkle tree over the records, signed checkpoints, proofs, bundles.

The tree is RFC 9162 over ``LogRecord.leaf_hash`` (leaf index = ``seq``). It is not
maintained by the submit path: ``integrate_and_publish`` runs apart from it (Celery beat
every 30 s, on demand, and after each commit in the embedded mode), reads the records
appended since the last checkpoint, stores the perfect nodes they complete
(``MerkleNode``) and signs a C2SP checkpoint over the new size. Proofs are then served
from the node store with O(log n) reads in two queries, for any tree size up to the
latest checkpoint's: every perfect node below that size is stored by construction.

Every hash in the JSON this module produces is lowercase hex, like ``leaf_hash`` and
``prev`` everywhere else in the API; only the checkpoint note carries base64, because
C2SP says so.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, Subquery

from accounts.models import SigningKey
from ledger.logkey import log_key_id, log_private_key, log_public_key_raw
from ledger.models import Batch, Checkpoint, EntryBatch, LinkRole, LogRecord, MerkleNode
from ledger.origin import METHOD
from ledger.protocol.bundle import BUNDLE_FORMAT
from ledger.protocol.merkle import (
    CompactRange,
    GetNode,
    NodeId,
    consistency_proof_from_store,
    inclusion_proof_from_store,
    nodes_for_consistency,
    nodes_for_inclusion,
    nodes_for_root,
    root_from_store,
)
from ledger.protocol.note import sign_checkpoint, vkey

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key of checkpoint publishing ("MAGCP" in ASCII): not the log's
# own lock, so integrating never holds up a submission.
CHECKPOINT_LOCK_KEY = 0x4D41474350
# Leaves read and integrated per query: bounds memory when a large backlog is integrated.
INTEGRATE_CHUNK = 10_000


class TreeCorrupted(RuntimeError):
    """The stored tree no longer hashes to the last signed checkpoint: nothing is signed."""


@dataclass(frozen=True)
class ProofRequestError(Exception):
    """A proof that cannot be served: ``code`` and ``status`` become problem+json."""

    code: str
    detail: str
    status: int = 400

    def __str__(self) -> str:
        return self.detail


@dataclass(frozen=True)
class Published:
    """The outcome of integrate_and_publish: the latest checkpoint and whether it is new."""

    checkpoint: Checkpoint
    created: bool


# -- publishing ----------------------------------------------------------------------------


def _lock_checkpointing() -> None:
    """Serialise publishers until the end of the transaction (SQLite's IMMEDIATE
    transactions already admit one writer at a time)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHECKPOINT_LOCK_KEY])


def latest_checkpoint() -> Checkpoint | None:
    """The checkpoint of the largest size, or None before the first one."""
    return Checkpoint.objects.order_by("-size").first()


def integrate_and_publish() -> Published | None:
    """Integrate the records appended since the last checkpoint and sign a new checkpoint.

    Returns None while the log is empty, the unchanged latest checkpoint (``created``
    false) when the log has not grown, else the new one. Safe to run concurrently (beat
    ticks, on-demand calls): publishers queue on an advisory lock and each extends the
    tree from the checkpoint the previous one committed. The frontier is rebuilt from the
    store and must hash to the last signed root, so the service never signs a tree that
    does not extend the one it signed before (``TreeCorrupted`` otherwise).
    """
    with transaction.atomic():
        _lock_checkpointing()
        last = latest_checkpoint()
        start = 0 if last is None else last.size
        frontier = CompactRange.from_store(_store_getter(nodes_for_root(start)), start)
        if last is not None and frontier.root().hex() != last.root:
            raise TreeCorrupted(
                f"The stored tree of size {start} hashes to {frontier.root().hex()}, but "
                f"checkpoint {start} signed {last.root}; refusing to sign a new checkpoint."
            )
        _integrate(frontier)
        if frontier.size == start:
            return None if last is None else Published(last, created=False)
        root = frontier.root()
        note = sign_checkpoint(settings.LEDGER_LOG_ORIGIN, frontier.size, root, log_private_key())
        checkpoint = Checkpoint.objects.create(size=frontier.size, root=root.hex(), note=note)
    log.info("published checkpoint %d %s", checkpoint.size, checkpoint.root)
    return Published(checkpoint, created=True)


def _integrate(frontier: CompactRange) -> None:
    """Append the stored leaves from ``frontier.size`` on, storing completed nodes."""
    while True:
        leaves = list(
            LogRecord.objects.filter(seq__gte=frontier.size)
            .order_by("seq")
            .values_list("seq", "leaf_hash")[:INTEGRATE_CHUNK]
        )
        rows = []
        for seq, leaf in leaves:
            if seq != frontier.size:
                # Appends commit in seq order, so a gap means a corrupt log: stop before it.
                log.error("log gap: expected seq %d, found %d", frontier.size, seq)
                leaves = []
                break
            rows += [
                (node_key(n.level, n.index), n.level, n.index, n.hash.hex())
                for n in frontier.append(bytes.fromhex(leaf))[1:]
            ]
        _insert_nodes(rows)
        if len(leaves) < INTEGRATE_CHUNK:
            return


def _insert_nodes(rows: list[tuple[int, int, int, str]]) -> None:
    """Insert (id, level, index, hash) rows. In SQL rather than bulk_create, which spends
    about 0.1 ms per row preparing values: publishing has to keep up with bulk ingest."""
    if not rows:
        return
    quote = connection.ops.quote_name
    table = quote(MerkleNode._meta.db_table)
    columns = ", ".join(quote(c) for c in ("id", "level", "index", "hash"))
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            ids, levels, indexes, hashes = (list(column) for column in zip(*rows, strict=True))
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT * FROM "  # noqa: S608 - names, not data
                "unnest(%s::bigint[], %s::smallint[], %s::bigint[], %s::varchar[])",
                [ids, levels, indexes, hashes],
            )
        else:
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES (%s, %s, %s, %s)", rows)  # noqa: S608


def publish_soon() -> None:
    """Have a checkpoint published once the current transaction commits, if configured.

    LEDGER_CHECKPOINT_ON_COMMIT defaults to CELERY_TASK_ALWAYS_EAGER: in the embedded mode
    (no worker, no beat) every submission is covered by a checkpoint right away; in
    production beat publishes and this costs one settings lookup.
    """
    enabled = getattr(settings, "LEDGER_CHECKPOINT_ON_COMMIT", settings.CELERY_TASK_ALWAYS_EAGER)
    if enabled:
        from ledger.tasks import publish_checkpoint

        # robust: a failed publication is logged, never turned into an error for a
        # submission that has already committed.
        transaction.on_commit(publish_checkpoint.delay, robust=True)


# -- the node store ------------------------------------------------------------------------


def node_key(level: int, index: int) -> int:
    """MerkleNode's primary key: one integer per position (levels stay below 64)."""
    return (index << 6) | level


def fetch_nodes(ids: Iterable[NodeId]) -> dict[tuple[int, int], bytes]:
    """The hashes of these perfect nodes in one query: stored nodes by primary key, leaves
    (level 0) from the log, as a UNION ALL keyed alike (a leaf's key is ``seq * 64``)."""
    wanted = list(ids)
    keys = {node_key(nid.level, nid.index) for nid in wanted if nid.level}
    seqs = {nid.index for nid in wanted if not nid.level}
    if not keys and not seqs:
        return {}
    nodes = MerkleNode.objects.filter(pk__in=sorted(keys)).values_list("id", "hash")
    leaves = (
        LogRecord.objects.filter(seq__in=sorted(seqs))
        .annotate(key=F("seq") * 64)
        .values_list("key", "leaf_hash")
        .order_by()
    )
    query = nodes.union(leaves, all=True) if keys and seqs else (nodes if keys else leaves)
    return {(key & 63, key >> 6): bytes.fromhex(hex_hash) for key, hex_hash in query}


def _getter(found: dict[tuple[int, int], bytes]) -> GetNode:
    def get_node(level: int, index: int) -> bytes:
        try:
            return found[(level, index)]
        except KeyError:
            raise TreeCorrupted(f"Merkle node ({level}, {index}) is missing from the store.") from None

    return get_node


def _store_getter(ids: Iterable[NodeId]) -> GetNode:
    return _getter(fetch_nodes(ids))


# -- proofs --------------------------------------------------------------------------------


def _checkpoints(*sizes: int | None) -> tuple[Checkpoint, dict[int, Checkpoint]]:
    """The latest checkpoint and those of exactly ``sizes`` that exist, in one query."""
    latest_size = Checkpoint.objects.order_by("-size").values("size")[:1]
    wanted = [s for s in sizes if s is not None]
    found = {c.size: c for c in Checkpoint.objects.filter(Q(size__in=wanted) | Q(size=Subquery(latest_size)))}
    if not found:
        raise ProofRequestError(
            "no-checkpoint",
            "No checkpoint has been published yet, so there is no tree to prove against; "
            "try again after the next checkpoint (at most a minute while the log grows).",
            404,
        )
    return found[max(found)], found


def _check_covered(size: int, latest: Checkpoint, name: str = "size") -> None:
    if size > latest.size:
        raise ProofRequestError(
            "not-checkpointed",
            f"{name}={size} is beyond the latest checkpoint, which covers {latest.size} "
            f"entries; ask for {name} <= {latest.size}, or wait for the next checkpoint.",
            404,
        )


@dataclass(frozen=True)
class InclusionProof:
    """PATH(index, D[0:size]) with the leaf it proves and the root it leads to."""

    index: int
    size: int
    leaf_hash: bytes
    proof: list[bytes]
    root: bytes
    checkpoint: Checkpoint | None  # the signed checkpoint of exactly this size, if any

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "size": self.size,
            "leaf_hash": self.leaf_hash.hex(),
            "proof": [h.hex() for h in self.proof],
            "root": self.root.hex(),
            "checkpoint": None if self.checkpoint is None else self.checkpoint.note,
        }


@dataclass(frozen=True)
class ConsistencyProof:
    """PROOF(first, D[0:second]) with both roots."""

    first: int
    second: int
    proof: list[bytes]
    first_root: bytes
    second_root: bytes
    first_checkpoint: Checkpoint | None
    second_checkpoint: Checkpoint | None

    def as_json(self) -> dict[str, Any]:
        return {
            "first": self.first,
            "second": self.second,
            "proof": [h.hex() for h in self.proof],
            "first_root": self.first_root.hex(),
            "second_root": self.second_root.hex(),
            "first_checkpoint": None if self.first_checkpoint is None else self.first_checkpoint.note,
            "second_checkpoint": None if self.second_checkpoint is None else self.second_checkpoint.note,
        }


def _root(size: int, checkpoints: dict[int, Checkpoint], get_node: GetNode) -> bytes:
    if size in checkpoints:
        return bytes.fromhex(checkpoints[size].root)
    return root_from_store(get_node, size)


def inclusion_proof(index: int, size: int | None = None) -> InclusionProof:
    """The inclusion proof of leaf ``index`` (= seq) in the tree of ``size`` leaves.

    ``size`` defaults to the latest checkpoint's and may be any size up to it (a client
    that trusts an older checkpoint asks for its size). Raises ProofRequestError:
    no-checkpoint (404), not-checkpointed (size beyond the latest checkpoint, 404),
    index-out-of-range (index >= size, 400; so size 0 always is).
    """
    latest, checkpoints = _checkpoints(size)
    size = latest.size if size is None else size
    _check_covered(size, latest)
    if index >= size:
        raise ProofRequestError(
            "index-out-of-range", f"Leaf index {index} is not below tree size {size}.", 400
        )
    wanted = [*nodes_for_inclusion(index, size), NodeId(0, index)]
    if size not in checkpoints:
        wanted += nodes_for_root(size)
    get_node = _store_getter(wanted)
    return InclusionProof(
        index=index,
        size=size,
        leaf_hash=get_node(0, index),
        proof=inclusion_proof_from_store(get_node, index, size),
        root=_root(size, checkpoints, get_node),
        checkpoint=checkpoints.get(size),
    )


def consistency_proof(first: int, second: int | None = None) -> ConsistencyProof:
    """The consistency proof from tree size ``first`` to ``second`` (default: latest).

    Raises ProofRequestError: no-checkpoint (404), not-checkpointed (404),
    empty-first-tree (first == 0, 400: RFC 9162 defines no proof from the empty tree),
    sizes-reversed (first > second, 400). ``first == second`` gives an empty proof.
    """
    latest, checkpoints = _checkpoints(first, second)
    second = latest.size if second is None else second
    _check_covered(second, latest, "second")
    if first == 0:
        raise ProofRequestError(
            "empty-first-tree",
            "A consistency proof from the empty tree is meaningless (RFC 9162 section 2.1.4): "
            "every tree extends it. Ask with first >= 1.",
            400,
        )
    if first > second:
        raise ProofRequestError(
            "sizes-reversed", f"first={first} is larger than second={second}; a log only grows.", 400
        )
    wanted = nodes_for_consistency(first, second)
    for size in {first, second} - set(checkpoints):
        wanted += nodes_for_root(size)
    get_node = _store_getter(wanted)
    return ConsistencyProof(
        first=first,
        second=second,
        proof=consistency_proof_from_store(get_node, first, second),
        first_root=_root(first, checkpoints, get_node),
        second_root=_root(second, checkpoints, get_node),
        first_checkpoint=checkpoints.get(first),
        second_checkpoint=checkpoints.get(second),
    )


def receipt_inclusion(seq: int) -> dict[str, Any]:
    """The ``inclusion`` part of an entry's receipt: its proof against the latest
    checkpoint once one covers it, else null with a note saying when to come back."""
    try:
        proof = inclusion_proof(seq)
    except ProofRequestError as exc:
        if exc.code not in ("no-checkpoint", "index-out-of-range"):
            raise
        return {
            "inclusion": None,
            "inclusion_note": (
                f"Entry {seq} is not covered by a checkpoint yet ({exc.detail.rstrip('.')}); "
                "checkpoints are published at least every minute while the log grows."
            ),
        }
    assert proof.checkpoint is not None  # the size asked was the latest checkpoint's
    return {
        "inclusion": {
            "checkpoint_size": proof.size,
            "root": proof.root.hex(),
            "checkpoint": proof.checkpoint.note,
            "proof": [h.hex() for h in proof.proof],
        }
    }


# -- bundles -------------------------------------------------------------------------------


def build_bundle(batch: Batch) -> dict[str, Any]:
    """The ``magnet-ledger/bundle/v1`` document for ``batch`` (DESIGN "Bundle").

    Holds every record that made or moved the batch or a batch upstream of it (output
    and subject links: intakes, the transforms of the pedigree, shipments, receipts,
    assays, write-offs, attestations, but not a transform that consumed an upstream batch
    into another branch), the registration and revocation records of every key that
    signed one, a checkpoint covering them all (published on the spot if the latest does
    not) with an inclusion proof for each record, the log's identity and the figures the
    service reports for the batch, which the offline verifier recomputes from the records.
    The caller has checked that the requesting user may see ``batch``: these are the
    entries ``LogRecord.objects.visible_to`` shows an OEM holding it.
    """
    from ledger.services import ancestors_of

    batch_ids = {batch.id} | ancestors_of({batch.id})
    linked = EntryBatch.objects.filter(
        batch_id__in=batch_ids, role__in=[LinkRole.OUTPUT, LinkRole.SUBJECT]
    ).values("record_id")
    records = list(LogRecord.objects.filter(seq__in=linked).values_list("seq", "canonical", "key_id"))
    signer_ids = {kid for _, _, kid in records} - {log_key_id()}
    keys = list(SigningKey.objects.filter(key_id__in=signer_ids).select_related("organisation"))
    have = {seq for seq, _, _ in records}
    key_seqs = {s for k in keys for s in (k.registered_seq, k.revoked_seq) if s is not None} - have
    if key_seqs:
        records += LogRecord.objects.filter(seq__in=key_seqs).values_list("seq", "canonical", "key_id")
    records.sort()

    checkpoint = latest_checkpoint()
    if checkpoint is None or (records and records[-1][0] >= checkpoint.size):
        published = integrate_and_publish()
        assert published is not None  # the log holds these records, so it is not empty
        checkpoint = published.checkpoint
    size = checkpoint.size
    get_node = _store_getter(
        [nid for seq, _, _ in records for nid in (*nodes_for_inclusion(seq, size), NodeId(0, seq))]
    )
    entries = [
        {
            "leaf_hash": get_node(0, seq).hex(),
            "proof": [h.hex() for h in inclusion_proof_from_store(get_node, seq, size)],
            "record": json.loads(canonical),
        }
        for seq, canonical, _ in records
    ]
    return {
        "format": BUNDLE_FORMAT,
        "batch": batch.id,
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "log": {
            "origin": settings.LEDGER_LOG_ORIGIN,
            "vkey": vkey(settings.LEDGER_LOG_ORIGIN, log_public_key_raw()),
            "log_key_id": log_key_id(),
        },
        "checkpoint": checkpoint.note,
        "records": entries,
        "keys": [
            {
                "key_id": k.key_id,
                "org": k.organisation.slug,
                "public_key": k.public_key,
                "registered_seq": k.registered_seq,
                "revoked_seq": k.revoked_seq,
            }
            for k in sorted(keys, key=lambda k: k.registered_seq)
        ],
        "claims": {
            "method": METHOD.name,
            "batch": batch.id,
            "material": batch.material,
            "custodian": batch.custodian.slug,
            "composition": batch.composition,
            "origin": batch.origin,
        },
    }
