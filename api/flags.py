"""Flags and webhooks in the API: parse, authorise, call checks.services, render."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import django_filters
from django.db.models import Exists, OuterRef, QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from api.problems import problem_response
from checks import conf, services
from checks.models import Delivery, Flag, FlagBatch, FlagOrganisation, FlagStatus, Severity, Webhook
from checks.rules import RULES


def _organisation(request: Request) -> Any:
    from api.views import organisation_of

    return organisation_of(request)


class FlagSerializer(serializers.Serializer):
    """A flag: the rule, its severity and status, the batches and entries involved, and the
    numbers that prove it (``evidence``). The shape is the same in webhook bodies."""

    id = serializers.IntegerField()
    rule = serializers.ChoiceField(choices=RULES)
    severity = serializers.ChoiceField(choices=Severity.choices)
    status = serializers.ChoiceField(choices=FlagStatus.choices)
    subject = serializers.CharField()
    batch = serializers.CharField(allow_null=True)
    batches = serializers.ListField(child=serializers.CharField())
    seqs = serializers.ListField(child=serializers.IntegerField())
    summary = serializers.CharField()
    evidence = serializers.DictField()
    organisations = serializers.ListField(child=serializers.CharField())
    detected_at = serializers.DateTimeField()
    acknowledged_at = serializers.DateTimeField(allow_null=True)
    acknowledged_by = serializers.CharField(allow_null=True)
    resolution = serializers.DictField(allow_null=True)

    def to_representation(self, instance: Flag) -> dict[str, Any]:
        return services.flag_document(instance)


class FlagFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=FlagStatus.choices)
    severity = django_filters.ChoiceFilter(choices=Severity.choices)
    rule = django_filters.ChoiceFilter(choices=[(r, r) for r in RULES])
    batch = django_filters.CharFilter(method="filter_batch")
    org = django_filters.CharFilter(method="filter_org")

    class Meta:
        model = Flag
        fields = ["status", "severity", "rule", "batch", "org"]

    def filter_batch(self, queryset: QuerySet[Flag], name: str, value: str) -> QuerySet[Flag]:
        return queryset.filter(Exists(FlagBatch.objects.filter(flag=OuterRef("pk"), batch_id=value)))

    def filter_org(self, queryset: QuerySet[Flag], name: str, value: str) -> QuerySet[Flag]:
        return queryset.filter(
            Exists(FlagOrganisation.objects.filter(flag=OuterRef("pk"), organisation__slug=value))
        )


class IdPagination(CursorPagination):
    ordering = "-id"
    page_size = 100
    page_size_query_param = "limit"
    max_page_size = 1000


@extend_schema(tags=["flags"])
class FlagViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Flags raised by the mass-balance checks: those that concern your organisation and
    those on batches you can see (an auditor sees all). Newest first."""

    serializer_class = FlagSerializer
    pagination_class = IdPagination
    filterset_class = FlagFilter

    def get_queryset(self) -> QuerySet[Flag]:
        return services.with_details(Flag.objects.visible_to(self.request.user))

    @extend_schema(request=None, responses={200: FlagSerializer})
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, pk: str) -> Response:
        """Mark the flag as seen (open -> acknowledged); by an organisation it concerns or an auditor."""
        org = _organisation(request)
        flag = self.get_object()
        try:
            services.acknowledge(flag, org)
        except services.FlagRefused as exc:
            return problem_response(exc.code, exc.detail)
        return Response(FlagSerializer(self.get_queryset().get(pk=flag.pk)).data)


class WebhookSerializer(serializers.ModelSerializer):
    org = serializers.SlugRelatedField(source="organisation", slug_field="slug", read_only=True)
    secret = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=128,
        help_text="HMAC key for X-Ledger-Signature; generated (and shown once) when omitted",
    )

    class Meta:
        model = Webhook
        fields = ["id", "org", "url", "secret", "active", "created_at"]
        read_only_fields = ["id", "org", "created_at"]

    def validate_url(self, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme != "https" and not (scheme == "http" and conf.webhook_allow_http()):
            raise serializers.ValidationError("Use an https:// URL.")
        return value


class DeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = Delivery
        fields = [
            "id",
            "flag",
            "event",
            "attempts",
            "last_status",
            "last_error",
            "next_attempt_at",
            "delivered_at",
            "created_at",
        ]


@extend_schema(tags=["webhooks"])
class WebhookViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """Your organisation's webhooks: new and resolved flags that concern you, upstream ones
    on material you hold included, are POSTed with an X-Ledger-Signature HMAC header."""

    serializer_class = WebhookSerializer

    def get_queryset(self) -> QuerySet[Webhook]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request user
            return Webhook.objects.none()
        return Webhook.objects.filter(organisation=_organisation(self.request)).select_related("organisation")

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        org = _organisation(request)
        form = WebhookSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        hook = services.create_webhook(
            org,
            form.validated_data["url"],
            form.validated_data.get("secret", ""),
            form.validated_data.get("active", True),
        )
        body = dict(WebhookSerializer(hook).data)
        if not form.validated_data.get("secret"):
            body["secret"] = hook.secret  # shown once: store it to verify signatures
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: DeliverySerializer(many=True)})
    @action(detail=True, methods=["get"])
    def deliveries(self, request: Request, pk: str) -> Response:
        """Delivery attempts of this webhook, newest first (the last 200)."""
        hook = self.get_object()
        rows = Delivery.objects.filter(webhook=hook).order_by("-id")[:200]
        return Response(DeliverySerializer(rows, many=True).data)


class ShortFlagSerializer(serializers.Serializer):
    id = serializers.IntegerField(required=False)
    rule = serializers.CharField()
    severity = serializers.CharField()
    status = serializers.CharField()
    batch = serializers.CharField(required=False, allow_null=True)
    summary = serializers.CharField(required=False)


class BatchFlagsMixin(serializers.Serializer):
    """Adds ``flags`` (on the batch) and ``upstream_flags`` (unresolved, on its ancestry) to
    the batch representation, loaded once for a whole page of batches."""

    flags = serializers.SerializerMethodField()
    upstream_flags = serializers.SerializerMethodField()

    def _flag_info(self, obj: Any) -> dict[str, Any]:
        cache: dict[str, Any] | None = getattr(self, "_flags_cache", None)
        if cache is None or obj.pk not in cache:
            parent = getattr(self, "parent", None)
            many = isinstance(parent, serializers.ListSerializer) and parent.instance is not None
            batches = list(parent.instance) if many else [obj]  # type: ignore[union-attr]
            request = self.context.get("request")
            cache = services.flags_for_batches([b.pk for b in batches], getattr(request, "user", None))
            self._flags_cache = cache
        return cache[obj.pk]

    @extend_schema_field(ShortFlagSerializer(many=True))
    def get_flags(self, obj: Any) -> list[dict[str, Any]]:
        return list(self._flag_info(obj)["flags"])

    @extend_schema_field(ShortFlagSerializer(many=True))
    def get_upstream_flags(self, obj: Any) -> list[dict[str, Any]]:
        return list(self._flag_info(obj)["upstream_flags"])
