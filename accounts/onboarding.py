"""Onboarding without the admin: organisations with their first facility, and API users.

Used by the operator commands (create_org, issue_token) and by the demo seed, so both
validate the same way: slugs and facility codes by the model validators, countries as
ISO 3166-1 alpha-2, one organisation per user.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import Facility, Organisation, Role, User

COUNTRY = re.compile(r"[A-Z]{2}")


class OnboardingError(ValueError):
    """A request an operator has to correct; the message says what and how."""


def _validation_message(exc: ValidationError) -> str:
    if hasattr(exc, "message_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
    return " ".join(exc.messages)


def create_organisation(
    *, slug: str, name: str, role: str, facility_code: str, country: str, facility_name: str = ""
) -> tuple[Organisation, Facility]:
    """Create an organisation and its first facility; refuse a slug that is taken."""
    if role not in Role.values:
        raise OnboardingError(f"role must be one of {', '.join(Role.values)}; got {role!r}.")
    country = country.upper()
    if not COUNTRY.fullmatch(country):
        raise OnboardingError(f"country must be an ISO 3166-1 alpha-2 code such as DE; got {country!r}.")
    existing = Organisation.objects.filter(slug=slug).first()
    if existing is not None:
        raise OnboardingError(
            f"Organisation {slug!r} already exists (role {existing.role}, facilities: "
            f"{', '.join(f.code for f in existing.facilities.all()) or 'none'}). "
            "Slugs are permanent: signed payloads carry them. Choose another slug."
        )
    org = Organisation(slug=slug, name=name or slug, role=role)
    facility = Facility(code=facility_code, name=facility_name or facility_code, country=country)
    try:
        org.full_clean()
    except ValidationError as exc:
        raise OnboardingError(f"Invalid organisation: {_validation_message(exc)}") from None
    with transaction.atomic():
        org.save()
        facility.organisation = org
        try:
            facility.full_clean()
        except ValidationError as exc:
            raise OnboardingError(f"Invalid facility: {_validation_message(exc)}") from None
        facility.save()
    return org, facility


def member(organisation: Organisation, username: str) -> tuple[User, bool]:
    """The user ``username`` of ``organisation``, created (without a password) if missing.

    Returns (user, created). A user of another organisation, or of none (an operator), is
    refused: a token acts for exactly one organisation.
    """
    user = User.objects.filter(username=username).first()
    if user is None:
        user = User(username=username, organisation=organisation)
        try:
            user.full_clean(exclude=["password"])
        except ValidationError as exc:
            raise OnboardingError(f"Invalid user: {_validation_message(exc)}") from None
        # API accounts authenticate with tokens only; no password can be guessed.
        user.set_unusable_password()
        user.save()
        return user, True
    if user.organisation_id != organisation.pk:
        belongs = user.organisation.slug if user.organisation else "no organisation (an operator account)"
        raise OnboardingError(
            f"User {username!r} belongs to {belongs}, not {organisation.slug!r}; "
            "choose another username for this organisation."
        )
    return user, False
