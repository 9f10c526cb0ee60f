"""Representations of records, batches and keys for the API."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import SigningKey
from api.flags import BatchFlagsMixin
from ledger.models import Batch, LogRecord


class RecordSerializer(serializers.Serializer):
    """A log record with its receipt. ``record`` is exactly what was hashed:
    leaf_hash = SHA-256(0x00 || JCS(record))."""

    seq = serializers.IntegerField()
    leaf_hash = serializers.CharField()
    entry_id = serializers.UUIDField()
    type = serializers.CharField(source="entry_type")
    org = serializers.SerializerMethodField()
    record = serializers.SerializerMethodField()

    @extend_schema_field(serializers.CharField())
    def get_org(self, obj: LogRecord) -> str:
        return str(obj.payload["org"])

    @extend_schema_field(serializers.DictField())
    def get_record(self, obj: LogRecord) -> dict[str, Any]:
        return obj.record

    def to_representation(self, instance: LogRecord) -> dict[str, Any]:
        # One json.loads per record instead of two through the method fields.
        record = instance.record
        return {
            "seq": instance.seq,
            "leaf_hash": instance.leaf_hash,
            "entry_id": str(instance.entry_id),
            "type": instance.entry_type,
            "org": record["envelope"]["payload"]["org"],
            "record": record,
        }


class ReceiptSerializer(RecordSerializer):
    """What POST /api/v1/entries/ returns per envelope; ``replayed`` is true when the
    entry id was already in the log with the same payload (an idempotent retry)."""

    replayed = serializers.BooleanField()


class EnvelopeSerializer(serializers.Serializer):
    """Documentation only: the envelope is checked by ledger.protocol and ledger.services."""

    payload = serializers.DictField(
        help_text="id (UUID), type, org, facility, occurred_at and the type's fields"
    )
    key_id = serializers.CharField(help_text="lowercase hex SHA-256 of the raw 32-byte public key")
    signature = serializers.CharField(help_text="Ed25519 over JCS(payload), base64url without padding")


class BulkSerializer(serializers.Serializer):
    entries = EnvelopeSerializer(many=True, help_text="up to 1,000 envelopes, all or nothing")


class OpenShipmentSerializer(serializers.Serializer):
    ship_seq = serializers.IntegerField()
    to_org = serializers.CharField(source="recipient.slug")
    mass_g = serializers.IntegerField()
    shipped_at = serializers.DateTimeField()


class BatchSerializer(BatchFlagsMixin, serializers.ModelSerializer):
    custodian = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    facility = serializers.CharField(source="facility.code", read_only=True)
    in_transit = serializers.SerializerMethodField()

    class Meta:
        model = Batch
        fields = [
            "id",
            "material",
            "mass_g",
            "remaining_g",
            "status",
            "custodian",
            "facility",
            "composition",
            "composition_seq",
            "origin",
            "created_seq",
            "updated_seq",
            "in_transit",
            "flags",
            "upstream_flags",
        ]

    @extend_schema_field(OpenShipmentSerializer(allow_null=True))
    def get_in_transit(self, obj: Batch) -> dict[str, Any] | None:
        shipment = getattr(obj, "open_shipment", None)
        if shipment is None:
            return None
        return dict(OpenShipmentSerializer(shipment).data)


class SigningKeySerializer(serializers.ModelSerializer):
    org = serializers.SlugRelatedField(source="organisation", slug_field="slug", read_only=True)
    valid = serializers.BooleanField(source="is_valid", read_only=True)

    class Meta:
        model = SigningKey
        fields = [
            "key_id",
            "org",
            "public_key",
            "label",
            "valid",
            "registered_seq",
            "registered_at",
            "revoked_seq",
            "revoked_at",
            "revocation_reason",
        ]
        read_only_fields = [
            "key_id",
            "registered_seq",
            "registered_at",
            "revoked_seq",
            "revoked_at",
            "revocation_reason",
        ]


class KeyRegistrationSerializer(serializers.Serializer):
    public_key = serializers.CharField(help_text="raw 32-byte Ed25519 public key, base64url")
    label = serializers.CharField(required=False, allow_blank=True, max_length=100, default="")


class RevocationSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")


class LogInfoSerializer(serializers.Serializer):
    origin = serializers.CharField()
    size = serializers.IntegerField()
    checkpoint_size = serializers.IntegerField(
        allow_null=True, help_text="size of the latest signed checkpoint (null before the first)"
    )
    vkey = serializers.CharField(help_text="the log key as a C2SP verifier key")
    log_key_id = serializers.CharField(help_text="key_id of the log key in the envelopes it signs")
    public_key = serializers.CharField(help_text="raw log public key, base64url")
