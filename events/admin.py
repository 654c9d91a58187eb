"""The run history in each kind's admin page: a read-only field the kinds' admins add
(`history = events.admin.history`, and "history" in readonly_fields and a fieldset)."""

from __future__ import annotations

from django.contrib import admin
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from .models import RunEvent


@admin.display(description="history")
def history(model_admin, run) -> str:
    """Every status change of the run, oldest first, as a table."""
    events = RunEvent.objects.filter(run_id=run.pk, kind=run._meta.label_lower).order_by("at", "id")
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{} → {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                moment(event.at),
                event.from_status or "?",
                event.to_status,
                event.attempt,
                f"{event.host} ({event.pid})" if event.host else "-",
                event.reason or "-",
                event.message or "",
            )
            for event in events
        ),
    )
    if not rows:
        return "No events yet."
    return format_html(
        "<table><tr><th>at</th><th>change</th><th>attempt</th><th>worker</th><th>reason</th>"
        "<th>message</th></tr>{}</table>",
        rows,
    )


def moment(at) -> str:
    """In the server's time zone, with its name (Asia/Shanghai), to the millisecond."""
    local = timezone.localtime(at)
    return f"{local:%Y-%m-%d %H:%M:%S.%f}"[:-3] + f" {timezone.get_current_timezone_name()}"
