"""Why an entry is refused: stable problem codes, their titles and HTTP statuses.

Each refusal names the rule (``code``), says what was wrong in words (``detail``), where
(an RFC 6901 JSON Pointer into the request body) and, for bulk requests, which envelope.
The API renders these as RFC 9457 problem+json; docs/errors.md lists them all.
"""

from __future__ import annotations

from dataclasses import dataclass

# code -> (HTTP status, title, what to do)
PROBLEMS: dict[str, tuple[int, str, str]] = {
    "malformed-json": (400, "Malformed JSON", "Send a UTF-8 JSON document."),
    "duplicate-member": (400, "Duplicate member name", "Send each member name once per object."),
    "number-out-of-range": (
        400,
        "Number out of range",
        "Keep integers within +-(2^53-1); masses are whole grams.",
    ),
    "not-canonicalizable": (400, "Not canonicalizable", "Send I-JSON: string keys, valid Unicode."),
    "invalid-envelope": (
        400,
        "Invalid envelope",
        'Send {"payload": {...}, "key_id": "<hex>", "signature": "<b64url>"}.',
    ),
    "invalid-request": (400, "Invalid request", 'Send one envelope or {"entries": [...]}.'),
    "too-many-entries": (400, "Too many entries", "Split the bulk into requests of at most 1,000."),
    "invalid-payload": (422, "Invalid payload", "Fix the field named by the pointer and sign again."),
    "invalid-mass": (422, "Invalid mass", "Masses are positive whole grams as JSON integers (no floats)."),
    "invalid-composition": (
        422,
        "Invalid composition",
        "Composition is element -> integer ppm, summing to <= 1,000,000.",
    ),
    "wrong-organisation": (
        403,
        "Wrong organisation",
        "Submit entries of your own organisation with your own token.",
    ),
    "unknown-facility": (422, "Unknown facility", "Name one of your organisation's facility codes."),
    "unknown-key": (422, "Unknown signing key", "Register the public key with POST /api/v1/keys/ first."),
    "key-revoked": (422, "Signing key revoked", "Sign with a key of your organisation that is valid."),
    "key-rejected": (422, "Public key rejected", "Generate a fresh key with `magledger keygen`."),
    "key-exists": (409, "Key already registered", "Each key is registered once."),
    "bad-signature": (
        422,
        "Signature does not verify",
        "Sign the RFC 8785 canonical bytes of the payload with the key named by key_id.",
    ),
    "unknown-batch": (422, "Unknown batch", "Refer to a batch that has entered the chain."),
    "batch-exists": (409, "Batch already exists", "Choose a new, globally unique batch id."),
    "not-custodian": (409, "Not the custodian", "Only the organisation holding the batch may do this."),
    "in-transit": (409, "Batch in transit", "Wait until the recipient has received the batch."),
    "not-in-transit": (409, "Batch not in transit", "Only a shipped batch can be received."),
    "not-recipient": (409, "Not the recipient", "Only the organisation named in the ship entry receives."),
    "overdraw": (409, "Overdraw", "Consume at most the batch's remaining mass (GET /api/v1/batches/{id}/)."),
    "partial-shipment": (
        409,
        "Partial shipment",
        "Ship whole batches: split first with a transform of process split.",
    ),
    "id-conflict": (
        409,
        "Entry id reused with different content",
        "Use a new UUID for a new entry; resend the same bytes to retry.",
    ),
    "unknown-organisation": (422, "Unknown organisation", "Name a registered organisation slug."),
    "not-found": (404, "Not found", "Check the identifier."),
    "no-checkpoint": (
        404,
        "No checkpoint yet",
        "Wait for the next checkpoint (at most a minute) or ask an auditor to publish one.",
    ),
    "not-checkpointed": (
        404,
        "Tree size not covered by a checkpoint",
        "Ask for a size at most the latest checkpoint's (GET /api/v1/log/).",
    ),
    "index-out-of-range": (400, "Leaf index out of range", "Give 0 <= index < size."),
    "empty-first-tree": (
        400,
        "Consistency from the empty tree",
        "Give first >= 1: every tree is consistent with the empty one.",
    ),
    "sizes-reversed": (400, "First size larger than second", "Give first <= second."),
    "body-too-large": (413, "Request body too large", "Send at most 2 MB per request."),
    "attest-not-auditor": (
        403,
        "Only auditors attest",
        "An attest entry is signed by an auditor organisation.",
    ),
    "unknown-flag": (422, "Unknown flag", "Name a flag id from GET /api/v1/flags/."),
    "flag-resolved": (
        409,
        "Flag already resolved",
        "A resolved flag takes no further verdict or acknowledgement.",
    ),
    "flag-not-concerned": (
        403,
        "Flag does not concern you",
        "Only the organisations a flag names, or an auditor, may acknowledge it.",
    ),
}


@dataclass
class EntryRejected(Exception):
    """An entry (or request) is refused; nothing of the submission is written."""

    code: str
    detail: str
    pointer: str = ""
    index: int | None = None

    def __post_init__(self) -> None:
        if self.code not in PROBLEMS:
            raise ValueError(f"unknown problem code {self.code!r}")
        super().__init__(self.detail)

    @property
    def status(self) -> int:
        return PROBLEMS[self.code][0]

    @property
    def title(self) -> str:
        return PROBLEMS[self.code][1]

    @property
    def hint(self) -> str:
        return PROBLEMS[self.code][2]

    def at(self, index: int | None, prefix: str) -> EntryRejected:
        """The same refusal, located inside envelope ``index`` of a request."""
        return EntryRejected(self.code, self.detail, prefix + self.pointer, index)
