"""The sequencer: appends records to the log, gapless and chained, one writer at a time."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection

from ledger.models import LogRecord
from ledger.protocol.envelope import record_bytes
from ledger.protocol.hashing import ZERO_HASH_HEX, leaf_hash

# pg_advisory_xact_lock key: any constant that nothing else in the database uses
# ("MAGLOG" in ASCII).
LOG_LOCK_KEY = 0x4D41474C4F47


@dataclass(frozen=True, slots=True)
class Appendable:
    """An envelope that passed every check, ready to become a record."""

    entry_id: str
    entry_type: str
    organisation_id: int
    key_id: str
    signature: str
    payload_bytes: bytes

    @property
    def payload_digest(self) -> str:
        return hashlib.sha256(self.payload_bytes).hexdigest()


def lock_log() -> None:
    """Take the log's write lock until the end of the current transaction.

    On PostgreSQL a transaction-level advisory lock; SQLite's IMMEDIATE transactions
    (settings) already admit one writer at a time.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOG_LOCK_KEY])


def log_head() -> tuple[int, str]:
    """(next seq, leaf hash of the last record or 64 zeros). Call with the lock held."""
    last = LogRecord.objects.order_by("-seq").values_list("seq", "leaf_hash").first()
    if last is None:
        return 0, ZERO_HASH_HEX
    return last[0] + 1, last[1]


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds, the form records carry."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build_records(
    items: Sequence[Appendable], first_seq: int, prev: str, recorded_at: datetime
) -> list[LogRecord]:
    """Chain ``items`` after ``prev`` from ``first_seq``; the caller holds the lock."""
    stamp = format_time(recorded_at)
    records = []
    for offset, item in enumerate(items):
        seq = first_seq + offset
        canonical = record_bytes(seq, stamp, prev, item.key_id, item.payload_bytes, item.signature)
        leaf = leaf_hash(canonical).hex()
        records.append(
            LogRecord(
                seq=seq,
                recorded_at=recorded_at,
                prev=prev,
                leaf_hash=leaf,
                canonical=canonical.decode("utf-8"),
                entry_id=item.entry_id,
                entry_type=item.entry_type,
                organisation_id=item.organisation_id,
                key_id=item.key_id,
                payload_digest=item.payload_digest,
            )
        )
        prev = leaf
    return records
