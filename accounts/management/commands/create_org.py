"""``manage.py create_org``: onboard an organisation and its first facility without the admin."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Role
from accounts.onboarding import OnboardingError, create_organisation


class Command(BaseCommand):
    help = "Create an organisation with its first facility. Refuses a slug that already exists."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="permanent identifier carried in signed payloads, e.g. evcycle")
        parser.add_argument("--name", required=True, help="display name, e.g. 'EVcycle GmbH'")
        parser.add_argument("--role", required=True, choices=Role.values, help="what the organisation does")
        parser.add_argument(
            "--facility", required=True, metavar="CODE", help="facility code, e.g. evcycle-leipzig"
        )
        parser.add_argument("--country", required=True, metavar="CC", help="ISO 3166-1 alpha-2, e.g. DE")
        parser.add_argument("--facility-name", default="", help="display name of the facility")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            org, facility = create_organisation(
                slug=options["slug"],
                name=options["name"],
                role=options["role"],
                facility_code=options["facility"],
                country=options["country"],
                facility_name=options["facility_name"],
            )
        except OnboardingError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Created organisation {org.slug} ({org.role}) with facility {facility.code} "
            f"({facility.country}). "
            f"Next: manage.py issue_token USERNAME --org {org.slug}, then register a key with "
            f"manage.py register_key --org {org.slug} PUBLIC_KEY or `magledger register-key`."
        )
