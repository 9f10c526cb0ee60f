from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.http import HttpRequest

from accounts.models import ApiToken, Facility, Organisation, SigningKey, User
from ledger import services


class FacilityInline(admin.TabularInline):
    model = Facility
    extra = 0


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["slug", "name"]
    inlines = [FacilityInline]


@admin.register(Facility)
class FacilityAdmin(admin.ModelAdmin):
    list_display = ["code", "organisation", "name", "country"]
    list_filter = ["country"]
    search_fields = ["code", "name", "organisation__slug"]


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ["username", "organisation", "is_staff", "is_active"]
    list_filter = ["organisation", "is_staff", "is_active"]
    fieldsets = (*BaseUserAdmin.fieldsets, ("Organisation", {"fields": ["organisation"]}))


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are issued with `manage.py issue_token` (shown once); here they are listed and
    revoked, never shown."""

    list_display = ["name", "user", "hint", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["digest", "hint", "created_at", "last_used_at"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request: HttpRequest, queryset: object) -> None:
        from django.utils import timezone

        count = (
            ApiToken.objects.filter(pk__in=[t.pk for t in queryset])
            .active()
            .update(  # type: ignore[attr-defined]
                revoked_at=timezone.now()
            )
        )
        self.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)


@admin.register(SigningKey)
class SigningKeyAdmin(admin.ModelAdmin):
    """Keys are registered through the API or `manage.py register_key`, which logs them;
    the admin can revoke (also logged) but never edit."""

    list_display = ["key_id", "organisation", "label", "registered_seq", "revoked_seq"]
    list_filter = ["organisation"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.action(description="Revoke selected keys (appends key_revoked records)")
    def revoke(self, request: HttpRequest, queryset: object) -> None:
        keys = list(queryset)  # type: ignore[call-overload]
        for key in keys:
            services.revoke_key(key, reason=f"revoked in admin by {request.user}")
        self.message_user(request, f"Revoked {len(keys)} key(s).", messages.SUCCESS)
