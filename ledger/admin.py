from django.contrib import admin
from django.http import HttpRequest

from ledger.models import Batch, LogRecord, Shipment


class ReadOnlyAdmin(admin.ModelAdmin):
    """The log and its projections are written only by ledger.services."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(LogRecord)
class LogRecordAdmin(ReadOnlyAdmin):
    list_display = ["seq", "entry_type", "organisation", "recorded_at", "leaf_hash"]
    list_filter = ["entry_type", "organisation"]
    search_fields = ["entry_id", "leaf_hash"]


@admin.register(Batch)
class BatchAdmin(ReadOnlyAdmin):
    list_display = ["id", "material", "custodian", "status", "mass_g", "remaining_g"]
    list_filter = ["material", "status", "custodian"]
    search_fields = ["id"]


@admin.register(Shipment)
class ShipmentAdmin(ReadOnlyAdmin):
    list_display = ["batch", "sender", "recipient", "mass_g", "received_mass_g", "ship_seq", "receive_seq"]
