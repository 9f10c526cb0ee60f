"""``manage.py register_key``: register an organisation's Ed25519 public key (logged)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Organisation
from ledger import services
from ledger.errors import EntryRejected


class Command(BaseCommand):
    help = (
        "Register a public signing key for an organisation, as POST /api/v1/keys/ does: the "
        "key must be the raw 32-byte Ed25519 key in base64url (`magledger keygen` prints it); "
        "a key_registered record signed by the log key is appended to the log."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "public_key", metavar="PUBKEY_B64URL", help="raw 32-byte Ed25519 public key, base64url"
        )
        parser.add_argument("--org", required=True, metavar="SLUG", help="the organisation the key signs for")
        parser.add_argument("--label", default="", help="a name for the key, e.g. the system that uses it")

    def handle(self, *args: Any, **options: Any) -> None:
        org = Organisation.objects.filter(slug=options["org"]).first()
        if org is None:
            raise CommandError(
                f"No organisation {options['org']!r}; create it first with manage.py create_org."
            )
        if len(options["label"]) > 100:
            raise CommandError("--label must be at most 100 characters.")
        try:
            key = services.register_key(org, options["public_key"].strip(), options["label"])
        except EntryRejected as exc:
            raise CommandError(f"{exc.title}: {exc.detail}") from None
        self.stdout.write(
            json.dumps(
                {
                    "key_id": key.key_id,
                    "org": org.slug,
                    "label": key.label,
                    "registered_seq": key.registered_seq,
                }
            )
        )
