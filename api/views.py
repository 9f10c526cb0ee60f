"""The REST API: parse, authorise, call ledger.services, render. No business rules here."""

from __future__ import annotations

import logging
from typing import Any

import django_filters
from django.db import connection
from django.db.models import Prefetch, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import SigningKey
from api.problems import json_problem
from api.serializers import (
    BatchSerializer,
    BulkSerializer,
    EnvelopeSerializer,
    KeyRegistrationSerializer,
    LogInfoSerializer,
    ReceiptSerializer,
    RecordSerializer,
    RevocationSerializer,
    SigningKeySerializer,
)
from ledger import services, transparency
from ledger.errors import PROBLEMS, EntryRejected
from ledger.log import format_time
from ledger.logkey import log_key_id, log_public_key_raw
from ledger.models import Batch, EntryType, LogRecord, Shipment
from ledger.pedigree import pedigree_of
from ledger.protocol.envelope import b64url_encode

logger = logging.getLogger(__name__)


def organisation_of(request: Request) -> Any:
    org = getattr(request.user, "organisation", None)
    if org is None:
        raise PermissionDenied("Your account belongs to no organisation; ask an operator to add it.")
    return org


class SeqCursorPagination(CursorPagination):
    ordering = "seq"
    page_size = 100
    page_size_query_param = "limit"
    max_page_size = 1000


class EntryFilter(django_filters.FilterSet):
    batch = django_filters.CharFilter(field_name="links__batch_id", distinct=True)
    type = django_filters.ChoiceFilter(field_name="entry_type", choices=EntryType.choices)
    org = django_filters.CharFilter(field_name="organisation__slug")
    after = django_filters.NumberFilter(field_name="seq", lookup_expr="gt")

    class Meta:
        model = LogRecord
        fields = ["batch", "type", "org", "after"]


@extend_schema(tags=["entries"])
class EntryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Entries of the log: submit signed envelopes, read records with their receipts."""

    serializer_class = RecordSerializer
    pagination_class = SeqCursorPagination
    filterset_class = EntryFilter
    lookup_field = "seq"
    lookup_value_regex = r"\d+"

    def get_queryset(self) -> QuerySet[LogRecord]:
        return LogRecord.objects.visible_to(self.request.user)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The record and its receipt, with its inclusion proof once a checkpoint covers it."""
        record = self.get_object()
        return Response({**RecordSerializer(record).data, **transparency.receipt_inclusion(record.seq)})

    @extend_schema(
        request=PolymorphicProxySerializer(
            component_name="Submission",
            serializers=[EnvelopeSerializer, BulkSerializer],
            resource_type_field_name=None,
        ),
        responses={
            201: ReceiptSerializer,
            200: OpenApiResponse(ReceiptSerializer, description="idempotent replay: already recorded"),
        },
        description=(
            'Submit one envelope, or {"entries": [...]} with up to 1,000 envelopes, all or '
            "nothing. Errors are problem+json naming the rule (code), the field (pointer) "
            "and, for a bulk, the index of the failing envelope."
        ),
    )
    def create(self, request: Request) -> Response:
        org = organisation_of(request)
        data = request.data
        if isinstance(data, dict) and set(data) == {"entries"}:
            envelopes = data["entries"]
            if not isinstance(envelopes, list) or not envelopes:
                raise EntryRejected("invalid-request", "entries must be a non-empty list.", "/entries")
            from django.conf import settings

            if len(envelopes) > settings.LEDGER_MAX_BULK:
                raise EntryRejected(
                    "too-many-entries",
                    f"{len(envelopes)} envelopes; at most {settings.LEDGER_MAX_BULK} per request.",
                    "/entries",
                )
            result = services.submit_entries(envelopes, organisation=org, bulk=True)
            # Compact receipts: with seq, recorded_at and prev the client can rebuild each
            # record around the envelope it sent and check leaf_hash, without the server
            # echoing ~1 MB of envelopes back.
            receipts = [
                {
                    "seq": r.seq,
                    "leaf_hash": r.leaf_hash,
                    "entry_id": str(r.entry_id),
                    "type": r.entry_type,
                    "recorded_at": format_time(r.recorded_at),
                    "prev": r.prev,
                    "replayed": replayed,
                }
                for r, replayed in zip(result.records, result.replayed, strict=True)
            ]
            code = status.HTTP_201_CREATED if result.created_any else status.HTTP_200_OK
            return Response({"receipts": receipts}, status=code)
        result = services.submit_entries([data], organisation=org)
        receipt = {**RecordSerializer(result.records[0]).data, "replayed": result.replayed[0]}
        code = status.HTTP_201_CREATED if result.created_any else status.HTTP_200_OK
        return Response(receipt, status=code)


class BatchFilter(django_filters.FilterSet):
    custodian = django_filters.CharFilter(field_name="custodian__slug")
    material = django_filters.CharFilter()
    status = django_filters.CharFilter()

    class Meta:
        model = Batch
        fields = ["custodian", "material", "status"]


class CreatedSeqPagination(SeqCursorPagination):
    # The outputs of one transform share a created_seq; the cursor counts its offset among
    # ties, which only works when the tie order is fixed (PostgreSQL's is not): id breaks them.
    ordering = ("created_seq", "id")


@extend_schema(tags=["batches"])
class BatchViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Batches: custodian, remaining mass, composition, origin split, transit state."""

    serializer_class = BatchSerializer
    pagination_class = CreatedSeqPagination
    filterset_class = BatchFilter
    lookup_value_regex = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}"

    def get_queryset(self) -> QuerySet[Batch]:
        open_shipments = Shipment.objects.filter(receive_seq__isnull=True).select_related("recipient")
        return (
            Batch.objects.visible_to(self.request.user)
            .select_related("custodian", "facility")
            .prefetch_related(Prefetch("shipments", queryset=open_shipments, to_attr="open_list"))
        )

    def get_serializer(self, *args: Any, **kwargs: Any) -> Any:
        for batch in _as_list(args[0] if args else None):
            open_list = getattr(batch, "open_list", [])
            batch.open_shipment = open_list[0] if open_list else None
        return super().get_serializer(*args, **kwargs)

    @extend_schema(
        responses={200: OpenApiTypes.OBJECT},
        description=(
            "Provenance graph back to every intake and recycled content per CRMA element "
            "(post-consumer / pre-consumer / primary shares, grams; unknown stays null)."
        ),
    )
    @action(detail=True, methods=["get"])
    def pedigree(self, request: Request, pk: str | None = None) -> Response:
        return Response(pedigree_of(self.get_object(), request.user))


def _as_list(obj: Any) -> list[Any]:
    if obj is None:
        return []
    if isinstance(obj, Batch):
        return [obj]
    return list(obj)


class KeyPagination(CursorPagination):
    ordering = "registered_seq"
    page_size = 100


@extend_schema(tags=["keys"])
class KeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Signing keys. Registering and revoking each append a record signed by the log key."""

    serializer_class = SigningKeySerializer
    pagination_class = KeyPagination
    lookup_field = "key_id"
    lookup_value_regex = r"[0-9a-f]{64}"

    def get_queryset(self) -> QuerySet[SigningKey]:
        keys = SigningKey.objects.select_related("organisation")
        user = self.request.user
        org = getattr(user, "organisation", None)
        if getattr(user, "is_superuser", False) or (org is not None and org.is_auditor):
            return keys
        if org is None:
            return keys.none()
        return keys.filter(organisation=org)

    @extend_schema(request=KeyRegistrationSerializer, responses={201: SigningKeySerializer})
    def create(self, request: Request) -> Response:
        org = organisation_of(request)
        form = KeyRegistrationSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        key = services.register_key(org, form.validated_data["public_key"], form.validated_data["label"])
        return Response(SigningKeySerializer(key).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=RevocationSerializer, responses={200: SigningKeySerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, key_id: str) -> Response:
        org = organisation_of(request)
        key = self.get_queryset().filter(organisation=org, key_id=key_id).first()
        if key is None:
            raise Http404
        form = RevocationSerializer(data=request.data or {})
        form.is_valid(raise_exception=True)
        key = services.revoke_key(key, form.validated_data["reason"])
        return Response(SigningKeySerializer(key).data)


@extend_schema(tags=["log"], responses={200: LogInfoSerializer})
class LogView(APIView):
    """The log's identity: origin, size and the log key (public; reveals hashes only)."""

    permission_classes = [permissions.AllowAny]

    def get(self, request: Request) -> Response:
        from django.conf import settings

        from ledger.protocol.note import vkey

        last = LogRecord.objects.order_by("-seq").values_list("seq", flat=True).first()
        checkpoint = transparency.latest_checkpoint()
        raw = log_public_key_raw()
        return Response(
            {
                "origin": settings.LEDGER_LOG_ORIGIN,
                "size": 0 if last is None else last + 1,
                "checkpoint_size": None if checkpoint is None else checkpoint.size,
                "vkey": vkey(settings.LEDGER_LOG_ORIGIN, raw),
                "log_key_id": log_key_id(),
                "public_key": b64url_encode(raw),
            }
        )


def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness and database reachability, for load balancers and systemd."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:  # any database failure means unhealthy
        # The reason goes to the log, not to the caller: it names hosts and databases.
        logger.exception("healthz: database check failed")
        return JsonResponse({"status": "error", "database": "unreachable"}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})


def api_not_found(request: HttpRequest) -> HttpResponse:
    """404 for API paths no route matches, in the same problem+json form as every other error."""
    return json_problem("not-found", f"No API resource at {request.path}; the routes are at /api/docs/.")


def problem_page(request: HttpRequest, code: str) -> HttpResponse:
    """Human-readable description behind each problem ``type`` URI."""
    if code not in PROBLEMS:
        raise Http404
    status_code, title, hint = PROBLEMS[code]
    return JsonResponse({"type": f"/problems/{code}", "title": title, "status": status_code, "hint": hint})
