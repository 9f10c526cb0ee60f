from django.contrib import admin
from django.http import HttpRequest

from checks.models import Delivery, Flag, PendingCheck, Webhook


@admin.register(Flag)
class FlagAdmin(admin.ModelAdmin):
    """Flags are raised by the checks and resolved by signed attest entries, not by hand."""

    list_display = ["id", "rule", "severity", "status", "batch", "subject_key", "detected_at"]
    list_filter = ["rule", "severity", "status"]
    search_fields = ["subject_key", "batch__id", "summary"]
    readonly_fields = [f.name for f in Flag._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(PendingCheck)
class PendingCheckAdmin(admin.ModelAdmin):
    list_display = ["seq", "created_at", "claimed_at", "attempts", "last_error"]
    readonly_fields = ["seq", "created_at", "claimed_at", "claim_token", "attempts", "last_error"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ["id", "organisation", "url", "active", "created_at"]
    list_filter = ["active", "organisation"]
    exclude = ["secret"]


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "webhook",
        "flag",
        "event",
        "attempts",
        "last_status",
        "delivered_at",
        "next_attempt_at",
    ]
    list_filter = ["event"]
    readonly_fields = [f.name for f in Delivery._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
