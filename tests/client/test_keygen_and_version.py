"""keygen writes a private key file safely; the client needs no Django; --version works."""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
import sys
from pathlib import Path

from ledger.protocol.envelope import b64url_decode
from ledger.protocol.keys import load_private_key_file, public_key_raw
from tests.client.support import ROOT, run_cli


def test_keygen_writes_a_0600_pkcs8_key_and_prints_its_key_id(tmp_path: Path) -> None:
    out = tmp_path / "signing.pem"
    result = run_cli("keygen", "--out", str(out))
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert set(printed) == {"key_id", "public_key", "path"}
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert out.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    raw = public_key_raw(load_private_key_file(out))
    assert printed["key_id"] == hashlib.sha256(raw).hexdigest()
    assert b64url_decode(printed["public_key"]) == raw
    assert "=" not in printed["public_key"]
    assert printed["path"] == str(out)


def test_keygen_refuses_to_overwrite_an_existing_file(tmp_path: Path) -> None:
    out = tmp_path / "signing.pem"
    assert run_cli("keygen", "--out", str(out)).returncode == 0
    before = out.read_bytes()
    again = run_cli("keygen", "--out", str(out))
    assert again.returncode == 2
    assert "refusing to overwrite" in again.stderr
    assert again.stdout == ""
    assert out.read_bytes() == before


def test_the_client_imports_no_django() -> None:
    code = "import ledger.client.cli, sys; assert 'django' not in sys.modules, 'django imported'"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result.stderr


def test_version_and_usage_errors() -> None:
    version = run_cli("--version")
    assert version.returncode == 0
    assert version.stdout.startswith("magledger ")
    assert run_cli().returncode == 2
    assert run_cli("submit", "--url", "http://127.0.0.1:9", "--token", "t").returncode == 2  # no FILE
