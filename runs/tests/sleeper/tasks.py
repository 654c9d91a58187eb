from __future__ import annotations

import time
from functools import cache

import redis
from celery import shared_task
from django.conf import settings

from engines.errors import TransientEngineError
from runs import lifecycle

from .models import NoopRun, SleepEffect, SleepResult, SleepRun


def sleep_through(run: SleepRun, ctx: lifecycle.RunContext) -> None:
    marker = ctx.tmp_dir / "work.tmp"
    marker.write_text("partial output")
    SleepRun.objects.filter(pk=run.pk).update(temp_marker=str(marker))
    for step in range(run.steps):
        ctx.step(100 * step // max(run.steps, 1), f"step {step + 1} of {run.steps}")
        time.sleep(run.seconds_per_step)
    if run.fail_with == "error":
        raise ValueError("the sleeper was told to fail")
    ctx.once("paid call", lambda: pay_once(run, ctx))
    if run.fail_with == "transient" and ctx.attempt == 1:
        raise TransientEngineError("the provider timed out")

    def save() -> None:
        SleepEffect.objects.create(run=run, attempt=ctx.attempt)
        SleepResult.objects.update_or_create(run=run, defaults={"steps_done": run.steps})

    ctx.complete(save)


def pay_once(run: SleepRun, ctx: lifecycle.RunContext) -> dict:
    """Stands for a costly outside call: counted per run, so a test sees it was not repeated."""
    counter().incr(paid_calls_key(run.pk))
    return {"attempt": ctx.attempt}


def paid_calls_key(run_id) -> str:
    return f"sleeper:paid-calls:{run_id}"


@shared_task(name="sleeper.generate", bind=True)
def generate_sleep(self, run_id: str) -> None:
    lifecycle.execute(self, SleepRun, run_id, sleep_through)


@shared_task(name="sleeper.noop_run", bind=True)
def generate_noop(self, run_id: str) -> None:
    lifecycle.execute(self, NoopRun, run_id, lambda run, ctx: None)


@shared_task(name="sleeper.noop")
def noop(counter_key: str) -> None:
    """The bare Celery task the lifecycle benchmark compares against: it only counts itself."""
    counter().incr(counter_key)


@shared_task(name="sleeper.noop_result", ignore_result=False)
def noop_result() -> str:
    """What users would run instead of the lifecycle: a task whose state and result Celery keeps
    in the database with django-celery-results (the lifecycle benchmark's second anchor)."""
    return "done"


@cache
def counter() -> redis.Redis:
    """The cache's Redis, which the test and its worker share on either broker."""
    return redis.Redis.from_url(settings.CACHE_URL)
