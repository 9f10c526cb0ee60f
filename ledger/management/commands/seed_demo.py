"""``manage.py seed_demo``: seed the demonstration chain (idempotent), print its personas as
JSON, or export it as payload files for the magledger client. The chain is ledger/demo.py."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ledger import demo


class Command(BaseCommand):
    help = (
        "Seed the demo chain (EV motor take-back -> HPMS -> refinery -> magnets -> OEM); running "
        "it again changes nothing. --json prints the personas with fresh API tokens; "
        "--export-payloads writes the chain as a new one for the magledger client."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--json",
            action="store_true",
            help="print one JSON object (base_url, personas with fresh tokens, batches) on stdout",
        )
        parser.add_argument(
            "--export-payloads",
            metavar="DIR",
            help="write numbered JSONL payload files and steps.sh for a new copy of the chain",
        )
        parser.add_argument(
            "--suffix",
            help="suffix of the exported chain's batch ids (default: 6 random hex digits)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        as_json = options["json"]
        # With --json, stdout carries the JSON object and nothing else.
        log = self.stderr if as_json else self.stdout
        if options["suffix"] is not None and not options["export_payloads"]:
            raise CommandError("--suffix only applies with --export-payloads DIR.")
        try:
            result = demo.seed()
        except demo.DemoError as exc:
            raise CommandError(str(exc)) from None
        if result.created:
            log.write(f"Seeded the demo chain: {result.created} entries recorded.")
        else:
            log.write(f"The demo chain is already seeded ({result.replayed} entries replayed, none new).")
        if options["export_payloads"]:
            out_dir = Path(options["export_payloads"])
            suffix = options["suffix"] or secrets.token_hex(3)
            try:
                files = demo.export_payloads(out_dir, suffix, result.personas)
            except demo.DemoError as exc:
                raise CommandError(str(exc)) from None
            except OSError as exc:
                raise CommandError(f"Cannot write to {out_dir}: {exc}") from None
            tokens = ", ".join(demo.token_variable(p) for p in dict.fromkeys(map(demo.file_persona, files)))
            log.write(
                f"Wrote {len(files)} payload files and steps.sh to {out_dir} (batch ids end in "
                f"-{suffix}). Set MAGLEDGER_URL and {tokens}, then run: bash {out_dir / 'steps.sh'}"
            )
        if as_json:
            port = os.environ.get("PORT") or "8000"
            document = demo.describe(result.personas, f"http://127.0.0.1:{port}")
            self.stdout.write(json.dumps(document, indent=2, ensure_ascii=False))
