from django.contrib import admin

from .models import DeliveryAttempt, WebhookDelivery, WebhookSecret


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = ("number", "started_at", "duration_ms", "status_code", "error", "succeeded")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """Every run ending announced to a callback_url, with each attempt (read-only)."""

    list_display = (
        "id",
        "run_kind",
        "run_id",
        "run_status",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "created_at",
        "delivered_at",
    )
    list_filter = ("status", "run_kind", "run_status")
    search_fields = ("run_id", "url", "owner__username")
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]
    inlines = (AttemptInline,)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WebhookSecret)
class WebhookSecretAdmin(admin.ModelAdmin):
    list_display = ("owner", "created_at", "rotated_at")
    fields = ("owner", "created_at", "rotated_at")  # the secret itself stays with its user
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False
