"""``magledger``: generate and register signing keys, sign payloads, submit envelopes.

docs/client.md is the user guide. Exit codes: 0 done; 1 the server refused (problem+json);
2 usage error or unreadable/invalid input file; 3 the server could not be reached after
every retry.

Adding a subcommand (``verify-bundle``, ``verify-log``): write a function that takes the
subparsers object, adds a parser and calls ``set_defaults(handler=...)`` with a function
``(argparse.Namespace) -> int`` (the exit code), and append it to ``SUBCOMMANDS``. Raise
``CommandError`` for a message plus exit code; ``main`` prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.client import __version__
from ledger.client.http import (
    DEFAULT_ATTEMPTS,
    DEFAULT_TIMEOUT,
    BadURL,
    LedgerClient,
    Rejected,
    Unreachable,
)
from ledger.client.verify import add_verify_bundle, add_verify_log
from ledger.protocol.canonical import ProtocolError, parse_json
from ledger.protocol.envelope import ENVELOPE_FIELDS, b64url_encode, check_envelope_shape, make_envelope
from ledger.protocol.keys import (
    generate_private_key,
    key_id,
    load_private_key_file,
    public_key_raw,
    write_private_key_file,
)

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

ENTRIES_PATH = "/api/v1/entries/"
KEYS_PATH = "/api/v1/keys/"
MAX_BULK = 1000  # the server's per-request limit (LEDGER_MAX_BULK)
# The server refuses bodies over 2 MiB by default (LEDGER_MAX_BODY_BYTES); a chunk is also
# cut before it reaches this many bytes, so large envelopes do not earn a 413.
MAX_CHUNK_BYTES = 1_900_000
RECEIPT_FIELDS = ("seq", "leaf_hash", "entry_id", "type", "replayed")


class CommandError(Exception):
    """A failure a command reports as one message on stderr and an exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# ---------------------------------------------------------------------------------------
# Input files


@dataclass(frozen=True, slots=True)
class Item:
    """One JSON value read from an input file, with where it came from (for messages)."""

    value: Any
    where: str


def read_text(path: str) -> tuple[str, str]:
    """Return (text, display name) of ``path``, or of stdin for ``-``."""
    if path == "-":
        return sys.stdin.read(), "<stdin>"
    try:
        return Path(path).read_text(encoding="utf-8"), path
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read {path}: {exc}") from exc


def _json_error(exc: ProtocolError) -> str:
    # parse_json words its errors for HTTP bodies; here the input is a file.
    return exc.detail.replace("The body is not valid", "not valid")


def read_documents(path: str) -> tuple[list[Item], bool]:
    """Read a JSON document or JSONL (one value per line) from ``path``.

    Returns the items and whether the file was a single JSON object (as opposed to a JSON
    array or JSONL). Parsing is strict (no duplicate member names, no NaN): a payload whose
    meaning depends on which duplicate wins must not be signed.
    """
    text, name = read_text(path)
    if not text.strip():
        raise CommandError(f"{name} is empty")
    try:
        whole = parse_json(text)
    except ProtocolError as exc:
        whole_error = exc
    else:
        if isinstance(whole, list):
            return [Item(value, f"{name} item {i}") for i, value in enumerate(whole)], False
        return [Item(whole, name)], True
    items = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            items.append(Item(parse_json(line), f"{name} line {lineno}"))
        except ProtocolError as exc:
            # If not even the first line parses, it is a broken JSON document, not JSONL.
            detail = _json_error(whole_error if not items else exc)
            where = name if not items else f"{name} line {lineno}"
            raise CommandError(f"{where}: {detail}") from exc
    return items, False


def load_key(path: str) -> Ed25519PrivateKey:
    """Load the Ed25519 private key (PKCS#8 PEM) at ``path``."""
    try:
        return load_private_key_file(path)
    except (OSError, ValueError, TypeError) as exc:
        raise CommandError(f"cannot load the private key from {path}: {exc}") from exc


def dumps(value: Any) -> str:
    """Compact one-line JSON, UTF-8 kept as is: one object per line of output."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def utc_now() -> str:
    """The current time as RFC 3339 UTC with whole seconds (``YYYY-MM-DDTHH:MM:SSZ``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------
# Server options shared by the commands that talk to a ledger


def add_server_arguments(parser: argparse.ArgumentParser, *, token: bool = True) -> None:
    """--url, --token, --retries and --timeout, with MAGLEDGER_URL/MAGLEDGER_TOKEN as defaults."""
    parser.add_argument(
        "--url",
        default=os.environ.get("MAGLEDGER_URL"),
        help="server root, e.g. http://127.0.0.1:8000 (default: $MAGLEDGER_URL)",
    )
    if token:
        parser.add_argument(
            "--token",
            default=os.environ.get("MAGLEDGER_TOKEN"),
            help="API token of your organisation (default: $MAGLEDGER_TOKEN)",
        )
    parser.add_argument(
        "--retries",
        type=positive_int,
        default=DEFAULT_ATTEMPTS,
        metavar="N",
        help=f"attempts in all, the first included (default {DEFAULT_ATTEMPTS}; 1 = no retry)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"per request (default {DEFAULT_TIMEOUT:g})",
    )


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def client_from(args: argparse.Namespace, *, token: bool = True) -> LedgerClient:
    """A LedgerClient from the parsed server options; missing URL/token is a usage error."""
    if not args.url:
        raise CommandError("no server URL: pass --url or set MAGLEDGER_URL")
    if token and not args.token:
        raise CommandError("no API token: pass --token or set MAGLEDGER_TOKEN")
    try:
        return LedgerClient(
            args.url, args.token if token else None, attempts=args.retries, timeout=args.timeout
        )
    except BadURL as exc:
        raise CommandError(str(exc)) from exc


# ---------------------------------------------------------------------------------------
# keygen


def cmd_keygen(args: argparse.Namespace) -> int:
    """Write a new Ed25519 key (PKCS#8 PEM, mode 0600) and print its key id and public key."""
    key = generate_private_key()
    try:
        write_private_key_file(key, args.out)
    except FileExistsError:
        raise CommandError(f"{args.out} exists; refusing to overwrite a key file") from None
    except OSError as exc:
        raise CommandError(f"cannot write {args.out}: {exc}") from exc
    raw = public_key_raw(key)
    print(dumps({"key_id": key_id(raw), "public_key": b64url_encode(raw), "path": os.path.abspath(args.out)}))
    return EXIT_OK


def add_keygen(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "keygen",
        help="generate a signing key",
        description="Generate an Ed25519 signing key, written as PKCS#8 PEM with mode 0600. "
        'Prints {"key_id", "public_key", "path"}.',
    )
    p.add_argument("--out", required=True, metavar="PATH", help="where to write the key (must not exist)")
    p.set_defaults(handler=cmd_keygen)


# ---------------------------------------------------------------------------------------
# register-key


def cmd_register_key(args: argparse.Namespace) -> int:
    """Register the public half of a key with the server for the token's organisation."""
    key = load_key(args.key)
    raw = public_key_raw(key)
    with client_from(args) as client:
        try:
            answer = client.post(KEYS_PATH, {"public_key": b64url_encode(raw), "label": args.label})
        except Rejected as exc:
            # A retried registration whose first attempt went through reads as "exists":
            # that is the outcome asked for, so show the key instead of an error.
            code = (exc.problem or {}).get("code")
            if code != "key-exists" or client.last_attempts < 2:
                raise
            answer = client.get(f"{KEYS_PATH}{key_id(raw)}/")
    print(dumps(answer))
    return EXIT_OK


def add_register_key(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "register-key",
        help="register a public key for your organisation",
        description="POST the public key of --key to URL/api/v1/keys/ and print the answer.",
    )
    add_server_arguments(p)
    p.add_argument("--key", required=True, metavar="PATH", help="private key file (from keygen)")
    p.add_argument("--label", default="", help="a name for the key, e.g. the system that uses it")
    p.set_defaults(handler=cmd_register_key)


# ---------------------------------------------------------------------------------------
# sign


def cmd_sign(args: argparse.Namespace) -> int:
    """Sign every payload of FILE; print one envelope (JSON input) or JSONL."""
    key = load_key(args.key)
    # JSON in gives one object out, JSONL in gives JSONL out: both are one object per line.
    items, _ = read_documents(args.file)
    now = utc_now()
    envelopes = []
    # Everything is signed before anything is printed, so a bad line leaves no partial output.
    for item in items:
        payload = item.value
        if not isinstance(payload, dict):
            raise CommandError(f"{item.where}: a payload is a JSON object")
        if set(payload) == ENVELOPE_FIELDS:
            raise CommandError(f"{item.where}: this is already an envelope; sign payloads")
        if "id" not in payload:
            if not args.new_id:
                raise CommandError(
                    f'{item.where}: the payload has no "id". The id (a UUID) is the idempotency '
                    "key: the server knows a resubmitted entry by it, so it is fixed before "
                    "signing. Add one, or pass --new-id to give each payload lacking one a fresh "
                    "uuid4 (then keep the signed output and resubmit that, never re-sign)."
                )
            payload = {"id": str(uuid.uuid4()), **payload}
        if args.now and "occurred_at" not in payload:
            payload = {**payload, "occurred_at": now}
        try:
            envelopes.append(make_envelope(key, payload))
        except ProtocolError as exc:
            raise CommandError(f"{item.where}: {exc.detail}") from exc
    sys.stdout.write("".join(dumps(e) + "\n" for e in envelopes))
    return EXIT_OK


def add_sign(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "sign",
        help="sign payloads into envelopes",
        description="Sign a JSON payload, or JSONL with one payload per line, into envelopes "
        "(Ed25519 over the RFC 8785 bytes of the payload). Every payload needs an id (a UUID, "
        "the idempotency key) unless --new-id is given.",
    )
    p.add_argument("--key", required=True, metavar="PATH", help="private key file (from keygen)")
    p.add_argument("--new-id", action="store_true", help="give each payload without an id a fresh uuid4")
    p.add_argument(
        "--now", action="store_true", help="set occurred_at to the current UTC time where it is missing"
    )
    p.add_argument("file", metavar="FILE", help="JSON or JSONL payloads, or - for stdin")
    p.set_defaults(handler=cmd_sign)


# ---------------------------------------------------------------------------------------
# submit


@dataclass(frozen=True, slots=True)
class Chunk:
    """A run of consecutive envelopes sent in one bulk request."""

    number: int  # 1-based
    start: int  # index of its first envelope in the file
    items: list[Item]


def chunks(items: list[Item], max_count: int = MAX_BULK, max_bytes: int = MAX_CHUNK_BYTES) -> list[Chunk]:
    """Cut ``items`` into bulk requests of at most ``max_count`` envelopes and about ``max_bytes``."""
    out: list[Chunk] = []
    current: list[Item] = []
    size = 0
    start = 0
    for i, item in enumerate(items):
        item_size = len(dumps(item.value).encode("utf-8")) + 1
        if current and (len(current) >= max_count or size + item_size > max_bytes):
            out.append(Chunk(len(out) + 1, start, current))
            current, size, start = [], 0, i
        current.append(item)
        size += item_size
    if current:
        out.append(Chunk(len(out) + 1, start, current))
    return out


def print_receipt(receipt: Any, out: TextIO) -> None:
    """One receipt line: seq, leaf_hash, entry_id, type, replayed."""
    if not isinstance(receipt, dict):
        raise CommandError(f"the server answered with an unexpected receipt: {receipt!r}", EXIT_REJECTED)
    out.write(dumps({name: receipt.get(name) for name in RECEIPT_FIELDS}) + "\n")


def cmd_submit(args: argparse.Namespace) -> int:
    """POST the envelopes of FILE (one, or bulk requests in order) and print their receipts."""
    items, _ = read_documents(args.file)
    for item in items:
        try:
            check_envelope_shape(item.value)
        except ProtocolError as exc:
            hint = " (sign payloads first with `magledger sign`)" if exc.code == "invalid-envelope" else ""
            where = f"{item.where} {exc.pointer}" if exc.pointer else item.where
            raise CommandError(f"{where}: {exc.detail}{hint}") from exc
    out = sys.stdout
    with client_from(args) as client:
        if len(items) == 1:
            try:
                receipt = client.post(ENTRIES_PATH, items[0].value)
            except Rejected as exc:
                raise Refused(exc, None, items) from exc
            print_receipt(receipt, out)
            return EXIT_OK
        parts = chunks(items, args.chunk_size)
        for chunk in parts:
            body = {"entries": [item.value for item in chunk.items]}
            try:
                answer = client.post(ENTRIES_PATH, body)
            except Rejected as exc:
                raise Refused(exc, (chunk, len(parts)), items) from exc
            except Unreachable as exc:
                raise Stopped(exc, chunk, len(parts)) from exc
            receipts = answer.get("receipts") if isinstance(answer, dict) else None
            if not isinstance(receipts, list) or len(receipts) != len(chunk.items):
                raise CommandError(
                    f"chunk {chunk.number}: the server answered without one receipt per envelope",
                    EXIT_REJECTED,
                )
            for receipt in receipts:
                print_receipt(receipt, out)
            if args.verbose:
                print(
                    f"chunk {chunk.number} of {len(parts)}: {len(receipts)} envelope(s) recorded "
                    f"({sum(bool(r.get('replayed')) for r in receipts)} replayed) in "
                    f"{client.last_attempts} attempt(s)",
                    file=sys.stderr,
                )
            # Receipts of recorded chunks reach the caller even if a later chunk fails.
            out.flush()
    return EXIT_OK


class Refused(CommandError):
    """A problem+json refusal, located in the submitted file."""

    def __init__(self, exc: Rejected, chunk: tuple[Chunk, int] | None, items: list[Item]) -> None:
        super().__init__(describe_refusal(exc, chunk, items), EXIT_REJECTED)


class Stopped(CommandError):
    """The server became unreachable in the middle of a multi-chunk submission."""

    def __init__(self, exc: Unreachable, chunk: Chunk, total: int) -> None:
        done = chunk.number - 1
        super().__init__(
            f"{exc}\n  chunk {chunk.number} of {total} (envelopes {chunk.start + 1}-"
            f"{chunk.start + len(chunk.items)}) may or may not be recorded; {done} chunk(s) before it "
            "were, their receipts are on stdout. Submit the same file again when the server is "
            "back: recorded entries come back with replayed: true.",
            EXIT_UNREACHABLE,
        )


def describe_refusal(exc: Rejected, chunk: tuple[Chunk, int] | None, items: list[Item]) -> str:
    """A readable account of a refusal: title, detail, pointer, index, and where in the file."""
    problem = exc.problem
    if problem is None:
        lines = [f"the server answered HTTP {exc.status}: {exc.text[:500].strip()}"]
    else:
        code = problem.get("code") or "?"
        lines = [f"rejected: {problem.get('title') or code} (HTTP {exc.status}, code {code})"]
        detail = problem.get("detail")
        if detail:
            lines.append(f"  detail:  {detail}")
        for error in problem.get("errors") or []:
            if not isinstance(error, dict):
                continue
            more = error.get("detail")
            lines.append(
                f"  pointer: {error.get('pointer') or '(the whole document)'}"
                + (f" ({more})" if more and more != detail else "")
            )
        index = problem.get("index")
        if isinstance(index, int):
            line = f"  index:   {index}"
            if chunk is not None:
                part, total = chunk
                if 0 <= index < len(part.items):
                    line += (
                        f" in chunk {part.number} of {total}, envelope {part.start + index + 1} of "
                        f"{len(items)} ({part.items[index].where})"
                    )
            lines.append(line)
        hint = problem.get("hint")
        if hint:
            lines.append(f"  what to do: {hint}")
    if chunk is not None:
        part, total = chunk
        lines.append(
            f"  nothing of chunk {part.number} of {total} (envelopes {part.start + 1}-"
            f"{part.start + len(part.items)}) was written"
            + (
                f"; the {part.number - 1} chunk(s) before it were, their receipts are on stdout. "
                "Fix the envelope and submit the same file again: recorded entries come back "
                "with replayed: true."
                if part.number > 1
                else "."
            )
        )
    elif items:
        lines.append(f"  in {items[0].where}; nothing was written.")
    return "\n".join(lines)


def add_submit(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "submit",
        help="submit signed envelopes",
        description="POST one envelope, or many (JSONL or a JSON array) in bulk requests of at "
        "most 1,000, in file order, to URL/api/v1/entries/. Prints one receipt per envelope "
        "as JSONL. Connection errors, timeouts and 502/503/504 are retried with exponential "
        "backoff: safe, as each payload id is an idempotency key.",
    )
    add_server_arguments(p)
    p.add_argument(
        "--chunk-size",
        type=lambda text: min(positive_int(text), MAX_BULK),
        default=MAX_BULK,
        metavar="N",
        help=f"envelopes per bulk request (default and maximum {MAX_BULK})",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="report each bulk request on stderr")
    p.add_argument("file", metavar="FILE", help="envelopes: JSON, JSON array or JSONL, or - for stdin")
    p.set_defaults(handler=cmd_submit)


# ---------------------------------------------------------------------------------------
# main

# Each adds one subcommand; append new ones here (see the module docstring).
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    add_keygen,
    add_register_key,
    add_sign,
    add_submit,
    add_verify_bundle,
    add_verify_log,
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand of SUBCOMMANDS."""
    parser = argparse.ArgumentParser(
        prog="magledger",
        description="Client of the recycled-magnet ledger: keys, signing, submission.",
        epilog="Exit codes: 0 ok, 1 refused by the server, 2 usage or input error, 3 server unreachable.",
    )
    parser.add_argument("--version", action="version", version=f"magledger {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    prefix = f"magledger {args.command}"
    try:
        code: int = args.handler(args)
    except CommandError as exc:
        print(f"{prefix}: {exc}", file=sys.stderr)
        return exc.exit_code
    except Rejected as exc:
        print(f"{prefix}: {describe_refusal(exc, None, [])}", file=sys.stderr)
        return EXIT_REJECTED
    except Unreachable as exc:
        print(f"{prefix}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except BadURL as exc:
        print(f"{prefix}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`magledger sign big.jsonl | head`): no traceback, and keep
        # the interpreter from failing again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return code


if __name__ == "__main__":
    sys.exit(main())
