"""``magledger verify-bundle`` and ``magledger verify-log``: check the ledger without trusting it.

``verify-bundle FILE`` works offline (no server, no Django): it checks a bundle downloaded
from ``/api/v1/batches/{id}/bundle/`` with ``ledger.protocol.bundle``. ``verify-log URL``
walks the whole log as an auditor, recomputes every leaf and the tree, checks the signed
checkpoint and that it extends the checkpoint saved by the previous run (``--state``).

Exit codes (both commands): 0 verified, 1 tampered (every failure is printed with its
seq, check, expected and actual value), 2 could not check (unreadable or unsupported
file, bad arguments, server unreachable or refusing). docs/verifying.md is the guide.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from ledger.client.http import DEFAULT_TIMEOUT, BadURL, ClientError, LedgerClient, Rejected
from ledger.protocol.bundle import (
    BundleUnreadable,
    LogAudit,
    Report,
    load_bundle,
    trust_anchor,
    verify_bundle,
    verify_checkpoint_note,
)
from ledger.protocol.merkle import ProofError, hash_from_hex
from ledger.protocol.note import NoteError

EXIT_VERIFIED = 0
EXIT_TAMPERED = 1
EXIT_UNCHECKED = 2

PAGE = 1000  # entries per page, the server's maximum


class CannotCheck(Exception):
    """Verification could not be carried out (exit 2); the message says why."""


def _out(line: str = "") -> None:
    print(line, file=sys.stdout)


def _err(line: str) -> None:
    print(line, file=sys.stderr)


def _percent(share: float | None) -> str:
    return "unknown" if share is None else f"{share * 100:.1f} %"


def _split(split: dict[str, float] | None) -> str:
    if split is None:
        return "unknown (no assay upstream)"
    return ", ".join(
        f"{name.replace('_', '-')} {_percent(split.get(name))}"
        for name in ("post_consumer", "pre_consumer", "primary")
    )


def _print_failures(report: Report, what: str) -> None:
    _out(f"TAMPERED: {len(report.failures)} failed check(s); {what}")
    for failure in report.failures:
        _out(f"  {failure}")


def _report_json(report: Report) -> dict[str, Any]:
    checkpoint = report.checkpoint
    return {
        "verified": report.ok,
        "batch": report.batch,
        "records": report.records,
        "checkpoint": None
        if checkpoint is None
        else {"origin": checkpoint.origin, "size": checkpoint.size, "root": checkpoint.root.hex()},
        "failures": [
            {"seq": f.seq, "check": f.check, "expected": f.expected, "actual": f.actual}
            for f in report.failures
        ],
        "warnings": report.warnings,
        "figures": report.figures,
    }


def _read_vkey(value: str | None) -> str | None:
    """--vkey takes the key itself or @FILE holding it."""
    if value is None or not value.startswith("@"):
        return value
    try:
        return Path(value[1:]).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CannotCheck(f"cannot read the verifier key from {value[1:]}: {exc}") from exc


# -- verify-bundle -----------------------------------------------------------------------------


def cmd_verify_bundle(args: argparse.Namespace) -> int:
    """Verify a bundle file offline and print what was checked or what broke."""
    try:
        trusted = _read_vkey(args.vkey)
        try:
            data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
        except OSError as exc:
            raise CannotCheck(f"cannot read {args.file}: {exc.strerror or exc}") from exc
        report = verify_bundle(load_bundle(data), trusted_vkey=trusted)
    except (CannotCheck, BundleUnreadable) as exc:
        _err(f"magledger verify-bundle: could not check {args.file}: {exc}")
        return EXIT_UNCHECKED
    for warning in report.warnings:
        _err(f"warning: {warning}")
    if args.json:
        _out(json.dumps(_report_json(report), ensure_ascii=False, indent=2))
        return EXIT_VERIFIED if report.ok else EXIT_TAMPERED
    checkpoint = report.checkpoint
    where = (
        "no readable checkpoint"
        if checkpoint is None
        else f"checkpoint {checkpoint.size} of {checkpoint.origin}"
    )
    _out(f"bundle of batch {report.batch}: {report.records} records, {where}")
    if not report.ok:
        _print_failures(report, "this bundle is not what the log committed to.")
        return EXIT_TAMPERED
    _out(
        "VERIFIED: canonical bytes, leaf hashes, signatures, key validity at each entry, chain links, "
        "inclusion proofs and the checkpoint signature all check out."
    )
    figures = report.figures or {}
    origin = figures.get("origin") or {}
    _out(f"custodian: {figures.get('custodian')}")
    _out("recycled content, recomputed from the records (proportional method):")
    _out(f"  mass: {_split(origin.get('mass'))}")
    for element, split in (origin.get("elements") or {}).items():
        _out(f"  {element}: {_split(split)}")
    return EXIT_VERIFIED


def add_verify_bundle(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``verify-bundle`` subcommand."""
    p = sub.add_parser(
        "verify-bundle",
        help="verify a batch's bundle offline",
        description="Check a magnet-ledger/bundle/v1 file offline: canonical bytes, leaf hashes, "
        "signatures, key validity at each entry, chain links, inclusion proofs against the "
        "checkpoint, the checkpoint's signature by the log key, and the recycled-content figures. "
        "Exit 0 verified, 1 tampered, 2 could not check.",
    )
    p.add_argument(
        "--vkey",
        help="the log's C2SP verifier key as the operator publishes it (GET /api/v1/log/), or @FILE; "
        "without it the bundle's own key is trusted (trust on first use)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("file", metavar="FILE", help="the bundle, or - for stdin")
    p.set_defaults(handler=cmd_verify_bundle)


# -- verify-log --------------------------------------------------------------------------------


def _load_state(path: Path | None) -> dict[str, Any] | None:
    if path is None or not path.exists():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(state, dict):
            raise ValueError("not a JSON object")
        return {
            "vkey": str(state["vkey"]),
            "size": int(state["size"]),
            "root": hash_from_hex(state["root"]),
            "checkpoint": str(state["checkpoint"]),
        }
    except (OSError, ValueError, KeyError, TypeError, ProofError) as exc:
        raise CannotCheck(f"cannot read the state file {path}: {exc}") from exc


def _save_state(path: Path, vkey: str, note: str, report: Report) -> None:
    checkpoint = report.checkpoint
    assert checkpoint is not None
    state = {
        "origin": checkpoint.origin,
        "vkey": vkey,
        "size": checkpoint.size,
        "root": checkpoint.root.hex(),
        "checkpoint": note,
        "checked_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)  # never leave a half-written state behind


def _get_text(client: LedgerClient, path: str, timeout: float) -> str:
    """GET a text/plain resource (the JSON client decodes JSON only)."""
    url = client.url(path)
    try:
        response = httpx.get(url, timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise CannotCheck(f"could not fetch {url}: {exc}") from exc
    if response.status_code != 200:
        raise CannotCheck(f"{url} answered HTTP {response.status_code}: {response.text[:300]}")
    return response.text


def _walk(client: LedgerClient, audit: LogAudit, size: int) -> None:
    """Feed records 0..size-1 to the audit, page by page (cursor pagination)."""
    path: str | None = f"/api/v1/entries/?limit={PAGE}"
    while path is not None and audit.tree.size < size:
        page = client.get(path)
        for item in page.get("results", []):
            if audit.tree.size >= size:
                return
            record = item.get("record") if isinstance(item, dict) else None
            seq = item.get("seq") if isinstance(item, dict) else None
            if seq != audit.tree.size:
                raise CannotCheck(
                    f"the server served seq {seq} where seq {audit.tree.size} was expected: this token "
                    "does not see the whole log (verify-log needs an auditor's token), or records are "
                    "missing from it"
                )
            audit.add(record, item.get("leaf_hash"))
        following = page.get("next")
        if following:
            parts = urlsplit(following)
            path = f"{parts.path}?{parts.query}"
        else:
            path = None
    if audit.tree.size < size:
        raise CannotCheck(f"the server served {audit.tree.size} records, the checkpoint covers {size}")


def cmd_verify_log(args: argparse.Namespace) -> int:
    """Walk and recompute the whole log; check it against its checkpoint and the saved one."""
    state_path = Path(args.state) if args.state else None
    try:
        if not args.token:
            raise CannotCheck("no API token: pass --token (an auditor's) or set MAGLEDGER_TOKEN")
        state = _load_state(state_path)
        with LedgerClient(args.url, args.token, attempts=args.retries, timeout=args.timeout) as client:
            info = client.get("/api/v1/log/")
            if not isinstance(info, dict):
                raise CannotCheck(f"{client.url('/api/v1/log/')} did not describe a log")
            report = Report(scope="log")
            pinned = _read_vkey(args.vkey) or (state or {}).get("vkey")
            verifier = trust_anchor(str(info.get("vkey", "")), pinned, report, source="the server")
            trusted = pinned or str(info.get("vkey"))
            note = _get_text(client, "/api/v1/log/checkpoint/", args.timeout)
            checkpoint = verify_checkpoint_note(note, verifier, report)
            if checkpoint is None or not report.ok:
                _print_failures(report, "the checkpoint is not signed by the trusted log key.")
                return EXIT_TAMPERED
            report.checkpoint = checkpoint
            audit = LogAudit(verifier, report)
            if state is not None and 0 < state["size"] <= checkpoint.size:
                audit.watch_size(state["size"])
            _walk(client, audit, checkpoint.size)
            audit.check_root(checkpoint)
            if state is not None:
                proof: list[bytes] = []
                if 0 < state["size"] <= checkpoint.size:
                    answer = client.get(
                        f"/api/v1/log/proof/consistency/?first={state['size']}&second={checkpoint.size}"
                    )
                    proof = [hash_from_hex(h) for h in answer.get("proof", [])]
                audit.check_consistency(state["size"], state["root"], proof, checkpoint)
    except (CannotCheck, BundleUnreadable) as exc:
        _err(f"magledger verify-log: could not check: {exc}")
        return EXIT_UNCHECKED
    except Rejected as exc:
        _err(f"magledger verify-log: could not check: the server refused: {exc} {exc.text[:300]}")
        return EXIT_UNCHECKED
    except (ClientError, BadURL) as exc:
        _err(f"magledger verify-log: could not check: {exc}")
        return EXIT_UNCHECKED
    except (ProofError, NoteError) as exc:
        _err(f"magledger verify-log: could not check: malformed answer from the server: {exc}")
        return EXIT_UNCHECKED
    for warning in report.warnings:
        _err(f"warning: {warning}")
    _out(
        f"log {checkpoint.origin}: {report.records} records, "
        f"checkpoint {checkpoint.size} root {checkpoint.root.hex()}"
    )
    if not report.ok:
        _print_failures(report, "the state file was left as it was.")
        return EXIT_TAMPERED
    since = ""
    if state is not None:
        since = f"; consistent with the checkpoint of {state['size']} saved by the previous run"
    _out(
        "VERIFIED: canonical bytes, chain, every signature and key validity, and the root equals the "
        f"signed checkpoint's{since}."
    )
    if state_path is not None:
        _save_state(state_path, trusted, note, report)
        _out(f"saved checkpoint {checkpoint.size} to {state_path}")
    else:
        _out("no --state file: pass one to check on the next run that the log only grew.")
    return EXIT_VERIFIED


def add_verify_log(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``verify-log`` subcommand."""
    p = sub.add_parser(
        "verify-log",
        help="walk and verify the whole log (auditors)",
        description="Fetch every entry of the log (an auditor's token sees them all), recompute "
        "canonical bytes, chain, signatures, key validity and the Merkle root, check the root "
        "against the signed checkpoint and, with --state, that the log only grew since the "
        "checkpoint saved by the previous run. Exit 0 verified, 1 tampered, 2 could not check.",
    )
    p.add_argument("url", metavar="URL", help="server root, e.g. http://127.0.0.1:8000")
    p.add_argument(
        "--token", default=os.environ.get("MAGLEDGER_TOKEN"), help="API token (default: $MAGLEDGER_TOKEN)"
    )
    p.add_argument(
        "--state",
        metavar="FILE",
        help="JSON file with the checkpoint of the previous run; updated when verified",
    )
    p.add_argument(
        "--vkey",
        help="the log's verifier key (or @FILE); default: the one saved in --state, else the server's",
    )
    p.add_argument("--retries", type=int, default=3, metavar="N", help="attempts per request (default 3)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS", help="per request")
    p.set_defaults(handler=cmd_verify_log)
