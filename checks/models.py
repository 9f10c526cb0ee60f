"""Flags raised by the soft rules, the checks still to run, and webhook alerts.

None of this is part of the log: flags are the service's opinion about the log, and an
auditor's verdict on one is itself a signed ``attest`` entry in the log.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from accounts.models import Organisation
from checks import rules
from ledger.models import Access, Batch


class Severity(models.TextChoices):
    CRITICAL = rules.CRITICAL
    WARNING = rules.WARNING


class FlagStatus(models.TextChoices):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


RULE_CHOICES = [(r, r.replace("_", " ")) for r in rules.RULES]
UNRESOLVED = (FlagStatus.OPEN, FlagStatus.ACKNOWLEDGED)


class FlagQuerySet(models.QuerySet["Flag"]):
    def visible_to(self, user: Any) -> FlagQuerySet:
        """The flags ``user`` may read: an auditor all; an organisation those that concern
        it and those on any batch it can see (Batch.objects.visible_to)."""
        org = getattr(user, "organisation", None)
        if getattr(user, "is_superuser", False) or (org is not None and org.is_auditor):
            return self.all()
        if org is None:
            return self.none()
        concerns = FlagOrganisation.objects.filter(flag=OuterRef("pk"), organisation=org)
        on_visible = FlagBatch.objects.filter(
            flag=OuterRef("pk"),
            batch_id__in=Access.objects.filter(organisation=org).values("batch_id"),
        )
        return self.filter(Exists(concerns) | Exists(on_visible))

    def unresolved(self) -> FlagQuerySet:
        return self.filter(status__in=UNRESOLVED)


class Flag(models.Model):
    """A problem a rule found, with the numbers as evidence.

    ``subject_key`` names what it is about (``entry:<seq>``, ``ship:<seq>``,
    ``batch:<id>``, ``record:<seq>``); with the rule it is unique, so a check that runs
    twice (redelivery, sweep) never raises a second flag. Status goes open ->
    acknowledged -> resolved; resolution is an auditor's ``attest`` entry.
    """

    rule = models.CharField(max_length=32, choices=RULE_CHOICES)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    subject_key = models.CharField(max_length=100)
    batch = models.ForeignKey(Batch, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    seqs = models.JSONField(default=list, help_text="log seqs of the entries involved")
    evidence = models.JSONField(default=dict)
    summary = models.TextField()
    status = models.CharField(max_length=16, choices=FlagStatus.choices, default=FlagStatus.OPEN)
    detected_at = models.DateTimeField(default=timezone.now)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution_seq = models.BigIntegerField(null=True, blank=True, help_text="seq of the attest entry")
    resolution_verdict = models.CharField(max_length=16, blank=True)
    resolution_note = models.TextField(blank=True)
    resolved_by = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    organisations = models.ManyToManyField(Organisation, through="FlagOrganisation", related_name="+")
    batches = models.ManyToManyField(Batch, through="FlagBatch", related_name="+")

    objects = FlagQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["rule", "subject_key"], name="flag_rule_subject_unique")
        ]
        indexes = [models.Index(fields=["status", "severity"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.rule} {self.subject_key} ({self.status})"


class FlagOrganisation(models.Model):
    """An organisation a flag concerns directly: the submitter(s) of the entries involved."""

    flag = models.ForeignKey(Flag, on_delete=models.CASCADE, related_name="org_links")
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["flag", "organisation"], name="flag_org_unique")]

    def __str__(self) -> str:
        return f"flag {self.flag_id} -> {self.organisation_id}"


class FlagBatch(models.Model):
    """A batch a flag is about (inputs and outputs of a transform, a shipped batch...)."""

    flag = models.ForeignKey(Flag, on_delete=models.CASCADE, related_name="batch_links")
    batch = models.ForeignKey(Batch, on_delete=models.PROTECT, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["flag", "batch"], name="flag_batch_unique")]
        indexes = [models.Index(fields=["batch", "flag"])]

    def __str__(self) -> str:
        return f"flag {self.flag_id} on {self.batch_id}"


class PendingCheck(models.Model):
    """A check owed to a log record, written in the same transaction as the record.

    The Celery message is only a wake-up call: if it is lost (Redis down at submission,
    worker killed), drain_pending finds the row and enqueues it again. A worker claims the
    row with a conditional UPDATE (a lease) and deletes it in the transaction that writes
    the flags.
    """

    seq = models.BigIntegerField(primary_key=True)
    created_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claim_token = models.UUIDField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["seq"]
        indexes = [models.Index(fields=["created_at"])]

    def __str__(self) -> str:
        return f"check #{self.seq}"


class SweepState(models.Model):
    """Where the incremental integrity sweep stopped: the last seq checked and its leaf hash."""

    name = models.CharField(max_length=32, primary_key=True)
    last_seq = models.BigIntegerField(default=-1)
    last_leaf = models.CharField(max_length=64, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    full_sweep_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} at #{self.last_seq}"


class Webhook(models.Model):
    """An organisation's endpoint for flag alerts; bodies are signed with ``secret``
    (HMAC-SHA256 in the X-Ledger-Signature header)."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="webhooks")
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=128)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.organisation_id}: {self.url}"


class DeliveryEvent(models.TextChoices):
    OPENED = "flag.opened"
    RESOLVED = "flag.resolved"


class Delivery(models.Model):
    """One alert to one webhook, retried with backoff until delivered or given up."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    flag = models.ForeignKey(Flag, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=32, choices=DeliveryEvent.choices)
    attempts = models.PositiveIntegerField(default=0)
    last_status = models.IntegerField(null=True, blank=True, help_text="HTTP status of the last attempt")
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True, help_text="null: no further attempt")
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["webhook", "flag", "event"], name="delivery_unique_event")
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"], name="delivery_due", condition=Q(delivered_at__isnull=True)
            )
        ]

    def __str__(self) -> str:
        return f"{self.event} flag {self.flag_id} -> webhook {self.webhook_id}"
