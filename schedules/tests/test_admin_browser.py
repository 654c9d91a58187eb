"""An operator in a real headless Chromium changes the scan interval in the admin; the running beat
follows within 10 s, the change is in the audit trail, and it survives a beat restart."""

from __future__ import annotations

import itertools
import shutil
from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from runs.tests.helpers import start_web, wait_for
from schedules.models import ScheduleChange
from schedules.seeding import sync_schedules
from schedules.tests.helpers import every, executions, start_beat

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

CHROMIUM = "/usr/bin/chromium"
SCAN = "scan async runs"


@pytest.fixture
def browser(monkeypatch):
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (make test does)")
    # Playwright's sync API runs an event loop in this thread; the ORM calls between its steps
    # are still plain synchronous calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_superuser("operator", password="a-long-password-4")


def fired(task: PeriodicTask) -> int:
    return PeriodicTask.objects.values_list("total_run_count", flat=True).get(pk=task.pk)


def gaps_after(moment) -> list[float]:
    fired = [done for done in executions(SCAN) if done > moment]
    return [(b - a).total_seconds() for a, b in itertools.pairwise(fired)]


def test_an_interval_edited_in_the_admin_takes_effect_within_10s_and_survives_a_restart(
    browser, operator, broker_url
):
    sync_schedules()
    every(2)  # the operator picks it from the interval list
    scan = PeriodicTask.objects.get(name=SCAN)
    web, base = start_web(broker_url)
    beat = start_beat(broker_url)
    try:
        wait_for(lambda: executions(SCAN), timeout=30, what="the first scan")
        page = browser.new_page()
        page.goto(f"{base}/admin/login/?next=/admin/")
        page.fill("#id_username", "operator")
        page.fill("#id_password", "a-long-password-4")
        page.click("input[type=submit]")
        page.wait_for_selector("#site-name")

        page.goto(f"{base}/admin/django_celery_beat/periodictask/{scan.pk}/change/")
        assert "Asia/Shanghai" in page.inner_text(".field-next_runs")
        assert "SUCCESS" in page.inner_text(".field-last_result_link")
        page.select_option("#id_interval", label="every 2 seconds")
        page.click("input[name=_save]")
        page.wait_for_selector(".messagelist .success")
        saved_at, fired_before = timezone.now(), fired(scan)

        # Two firings within 10 s of the save (the leader counts each in the row as it fires):
        # at the old 15 s cadence that cannot happen, so the running beat took the edit.
        wait_for(lambda: fired(scan) >= fired_before + 2, timeout=10, what="two firings in 10 s")
        # And the worker runs them about 2 s apart.
        wait_for(lambda: any(gap < 3 for gap in gaps_after(saved_at)), timeout=30, what="2 s runs")
        assert PeriodicTask.objects.get(pk=scan.pk).interval.every == 2

        page.goto(f"{base}/admin/django_celery_beat/periodictask/{scan.pk}/change/")
        trail = page.inner_text(".field-audit_trail")
        assert "operator" in trail and "admin" in trail
        assert "'every 15 seconds' → 'every 2 seconds'" in trail
        change = ScheduleChange.objects.get(object_id=scan.pk, action="changed")
        assert change.actor == operator and change.source == "admin"
        assert change.changes["interval"] == ["every 15 seconds", "every 2 seconds"]

        beat.stop()
        beat = start_beat(broker_url, "beat-restarted")
        restarted_at = timezone.now()
        wait_for(lambda: len(gaps_after(restarted_at)) >= 2, timeout=30, what="scans after restart")
        assert max(gaps_after(restarted_at)) < 3  # still every 2 s: the edit persisted
        assert PeriodicTask.objects.get(pk=scan.pk).interval.every == 2
        assert timezone.now() - executions(SCAN)[-1] < timedelta(seconds=10)
    finally:
        beat.stop()
        web.stop()
