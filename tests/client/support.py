"""Run ``magledger`` as a real subprocess and build its input files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.models import LogRecord
from ledger.protocol.keys import write_private_key_file
from tests.conftest import Persona, new_batch_id

ROOT = Path(__file__).resolve().parents[2]


def run_cli(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m ledger.client.cli ARGS`` with the real argv, stdout, stderr and exit code.

    MAGLEDGER_* from the caller's environment are dropped so a test sees only what it sets.
    """
    base = {k: v for k, v in os.environ.items() if not k.startswith("MAGLEDGER_")}
    return subprocess.run(
        [sys.executable, "-m", "ledger.client.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**base, **(env or {})},
        timeout=timeout,
        check=False,
    )


def key_file(key: Ed25519PrivateKey, path: Path) -> Path:
    """Write ``key`` where the CLI can load it (PKCS#8 PEM, mode 0600)."""
    write_private_key_file(key, path)
    return path


def intake_payload(persona: Persona, mass_g: int = 1_000, batch: str | None = None) -> dict[str, Any]:
    """An unsigned intake payload of ``persona`` for a new batch."""
    return persona.payload(
        "intake",
        batch=batch or new_batch_id(persona.org.slug),
        material="magnet_scrap",
        mass_g=mass_g,
        origin="post_consumer",
    )


def write_jsonl(path: Path, values: list[Any]) -> Path:
    path.write_text("".join(json.dumps(v) + "\n" for v in values), encoding="utf-8")
    return path


def read_jsonl(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def record_count() -> int:
    return LogRecord.objects.count()
