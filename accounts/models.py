"""Organisations, facilities, users, API tokens and signing keys."""

from __future__ import annotations

import hashlib
import secrets

from django.contrib.auth.models import AbstractUser
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

slug_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9-]{1,39}$", "Lowercase letters, digits and hyphens; 2 to 40 characters."
)


class Role(models.TextChoices):
    PROCESSOR = "processor", "Recycler / processor"
    OEM = "oem", "OEM"
    AUDITOR = "auditor", "Auditor"
    LAB = "lab", "Assay laboratory"


class Organisation(models.Model):
    """A party to the chain: recycler or processor, OEM, auditor or assay lab.

    The slug is what signed payloads carry in ``org``; it never changes once used.
    """

    slug = models.CharField(max_length=40, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @property
    def is_auditor(self) -> bool:
        return self.role == Role.AUDITOR


class Facility(models.Model):
    """A site of an organisation (plant, warehouse, lab); payloads name it by ``code``."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="facilities")
    code = models.CharField(max_length=40, validators=[slug_validator])
    name = models.CharField(max_length=200)
    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2")

    class Meta:
        ordering = ["organisation__slug", "code"]
        constraints = [
            models.UniqueConstraint(fields=["organisation", "code"], name="facility_code_unique_per_org")
        ]

    def __str__(self) -> str:
        return f"{self.organisation.slug}/{self.code}"


class User(AbstractUser):
    """A person or system account; belongs to at most one organisation (operators to none)."""

    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, null=True, blank=True, related_name="users"
    )


def hash_token(secret: str) -> str:
    """SHA-256 of a token: tokens are 256-bit random, so a fast hash is enough to store them."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def active(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiToken(models.Model):
    """An API token for a user. Only its SHA-256 is stored; the token is shown once."""

    PREFIX = "mlt_"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    digest = models.CharField(max_length=64, unique=True)
    hint = models.CharField(max_length=12, help_text="first characters, to tell tokens apart")
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.hint}…)"

    @classmethod
    def issue(cls, user: User, name: str) -> tuple[ApiToken, str]:
        """Create a token and return it with its plain text, which is not stored anywhere."""
        plain = cls.PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(user=user, name=name, digest=hash_token(plain), hint=plain[:12])
        return token, plain


class SigningKeyQuerySet(models.QuerySet["SigningKey"]):
    def valid(self) -> SigningKeyQuerySet:
        return self.filter(revoked_seq__isnull=True)


class SigningKey(models.Model):
    """An organisation's Ed25519 public key. Valid from its ``key_registered`` record until
    its ``key_revoked`` record, both appended to the log and signed by the log key."""

    key_id = models.CharField(max_length=64, primary_key=True)
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="keys")
    public_key = models.CharField(max_length=43, help_text="raw 32 bytes, base64url")
    label = models.CharField(max_length=100, blank=True)
    registered_seq = models.BigIntegerField()
    registered_at = models.DateTimeField()
    revoked_seq = models.BigIntegerField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revocation_reason = models.CharField(max_length=200, blank=True)

    objects = SigningKeyQuerySet.as_manager()

    class Meta:
        ordering = ["registered_seq"]

    def __str__(self) -> str:
        return f"{self.organisation.slug}:{self.key_id[:12]}"

    @property
    def is_valid(self) -> bool:
        return self.revoked_seq is None
