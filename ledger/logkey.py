"""The service's own Ed25519 log key: signs key (de)registrations and checkpoints."""

from __future__ import annotations

import functools
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from ledger.protocol.keys import (
    generate_private_key,
    key_id,
    load_private_key_file,
    public_key_raw,
    write_private_key_file,
)


@functools.cache
def log_private_key() -> Ed25519PrivateKey:
    """The log key, from LEDGER_LOG_KEY (PEM text) or LEDGER_LOG_KEY_FILE.

    With LEDGER_LOG_KEY_AUTOCREATE (the embedded default) a missing file is generated with
    mode 0600; in production a missing key is a configuration error, because a new key
    would make every published checkpoint unverifiable.
    """
    pem = os.environ.get("LEDGER_LOG_KEY", "")
    if pem:
        key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ImproperlyConfigured("LEDGER_LOG_KEY does not hold an Ed25519 private key.")
        return key
    path = Path(settings.LEDGER_LOG_KEY_FILE)
    if not path.exists():
        if not settings.LEDGER_LOG_KEY_AUTOCREATE:
            raise ImproperlyConfigured(
                f"No log key at {path}. Create one with `magledger keygen --out {path}` "
                "or set LEDGER_LOG_KEY."
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            write_private_key_file(generate_private_key(), path)
        except FileExistsError:
            pass  # another process created it first; use theirs
    return load_private_key_file(path)


def log_public_key_raw() -> bytes:
    return public_key_raw(log_private_key())


def log_key_id() -> str:
    """key_id of the log key, as it appears in the envelopes the service signs."""
    return key_id(log_public_key_raw())
