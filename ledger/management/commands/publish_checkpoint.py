"""``manage.py publish_checkpoint``: integrate new entries and sign a checkpoint now.

Beat does this every 30 s in production; this is for the embedded mode, scripts and
operators. Safe to run at any time, concurrently with the service.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from ledger.transparency import integrate_and_publish


class Command(BaseCommand):
    help = "Integrate new log entries into the Merkle tree and publish a signed checkpoint."

    def handle(self, *args: Any, **options: Any) -> None:
        published = integrate_and_publish()
        if published is None:
            self.stdout.write("The log is empty: nothing to checkpoint.")
            return
        checkpoint = published.checkpoint
        if published.created:
            self.stdout.write(
                self.style.SUCCESS(f"Published checkpoint {checkpoint.size} root {checkpoint.root}")
            )
        else:
            self.stdout.write(
                f"The log has not grown since checkpoint {checkpoint.size} root {checkpoint.root}"
            )
        self.stdout.write(checkpoint.note, ending="")
