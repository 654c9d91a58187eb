from celery import shared_task

from . import delivery


@shared_task(name="webhooks.deliver")
def deliver(delivery_id: int, token: str) -> str:
    """One attempt at one delivery (the system queue: `webhooks.*` route in settings)."""
    return delivery.deliver(delivery_id, token)
