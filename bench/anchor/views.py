import json

from celery import Celery
from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .models import AnchorRun

celery = Celery("anchor", broker=settings.CELERY_BROKER_URL)


@csrf_exempt
def submit(request):
    body = json.loads(request.body)
    run = AnchorRun.objects.create(
        status="pending",
        payload={"episode_name": body["episode_name"], "source_ids": body["source_ids"]},
    )
    celery.send_task("anchor.generate", args=[str(run.id)], queue="anchor")
    return JsonResponse({"id": str(run.id)}, status=202)
