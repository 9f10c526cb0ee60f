"""``manage.py issue_token``: an API token for a user of an organisation (created if missing)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import ApiToken, Organisation
from accounts.onboarding import OnboardingError, member


class Command(BaseCommand):
    help = (
        "Issue an API token for USERNAME in organisation --org, creating the user if missing. "
        "The token is printed once on stdout and stored only as a hash."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="the API user, e.g. evcycle-erp")
        parser.add_argument("--org", required=True, metavar="SLUG", help="the user's organisation")
        parser.add_argument("--name", default="api", help="a name for the token, e.g. the system using it")

    def handle(self, *args: Any, **options: Any) -> None:
        org = Organisation.objects.filter(slug=options["org"]).first()
        if org is None:
            raise CommandError(
                f"No organisation {options['org']!r}; create it first with manage.py create_org."
            )
        name = options["name"].strip()
        if not name or len(name) > 100:
            raise CommandError("--name must be 1 to 100 characters.")
        try:
            user, created = member(org, options["username"])
        except OnboardingError as exc:
            raise CommandError(str(exc)) from None
        _, token = ApiToken.issue(user, name)
        # Only the token goes to stdout, so `TOKEN=$(manage.py issue_token ...)` works.
        self.stderr.write(
            f"{'Created' if created else 'Existing'} user {user.username} of {org.slug}; token "
            f"{name!r} issued. It is shown once: store it now."
        )
        self.stdout.write(token)
