"""A run's admin page, live, in a real headless Chromium: the progress bar moves without a reload
(through the event stream on the ASGI server, and by reading the API every 2 s where the stream
cannot be opened), the Cancel and Retry buttons act, no Save button is offered on a page with
nothing to edit, and every time carries its zone's name."""

from __future__ import annotations

import socket

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from runs import lifecycle
from runs.models import TERMINAL, RunStatus
from runs.tests.helpers import PYTHON, ServiceProcess, free_port, service_env, start_web, wait_for
from runs.tests.sleeper.models import SleepRun
from schedules.seeding import sync_schedules
from schedules.tests.test_admin_browser import browser, operator  # noqa: F401 - fixtures

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

PASSWORD = "a-long-password-4"  # the operator fixture's


def start_asgi(broker_url: str) -> tuple[ServiceProcess, str]:
    """uvicorn serving web.asgi, as `make run` does: the event streams need an ASGI server."""
    port = free_port()
    web = ServiceProcess(
        [PYTHON, "-m", "uvicorn", "web.asgi:application", "--host", "127.0.0.1",
         "--port", str(port), "--no-access-log"],
        service_env(CELERY_BROKER_URL=broker_url),
        "asgi",
    )  # fmt: skip

    def answers() -> bool:
        if web.process.poll() is not None:
            raise AssertionError(f"uvicorn exited:\n{web.log()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    wait_for(answers, timeout=30, what="uvicorn to listen")
    return web, f"http://127.0.0.1:{port}"


def logged_in(browser, base: str):  # noqa: F811 - the fixture's value
    page = browser.new_page()
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    return page


def sleeper(owner, steps: int, seconds: float = 1.0) -> SleepRun:
    return SleepRun.objects.create(owner=owner, steps=steps, seconds_per_step=seconds)


def change_url(base: str, run: SleepRun) -> str:
    return f"{base}/admin/sleeper/sleeprun/{run.pk}/change/"


def status_of(run: SleepRun) -> str:
    return SleepRun.objects.values_list("status", flat=True).get(pk=run.pk)


def watch_progress(page, run: SleepRun) -> list[int]:
    """The bar's values, read while the run goes through its steps, until it ends."""
    seen: list[int] = []

    def ended() -> bool:
        value = int(page.eval_on_selector("#run-live-progress", "bar => bar.value"))
        if not seen or seen[-1] != value:
            seen.append(value)
        badge = page.get_attribute("#run-live-status", "data-status")
        return badge in TERMINAL

    wait_for(ended, timeout=60, interval=0.2, what=f"the page to show run {run.pk} ended")
    return seen


def assert_moved_live(page, run: SleepRun, channel: str) -> None:
    page.evaluate("window.pageMarker = 'not reloaded'")
    lifecycle.dispatch(run)
    seen = watch_progress(page, run)
    assert page.evaluate("window.pageMarker") == "not reloaded"
    # The run steps 0, 16, 33, 50, 66, 83 and ends at 100; the page saw it rise through them.
    rising = [value for value in seen if 0 < value < 100]
    assert len(rising) >= 3, seen
    assert rising == sorted(rising), seen
    assert seen[-1] == 100
    assert page.get_attribute("#run-live-status", "data-status") == RunStatus.SUCCEEDED
    assert page.inner_text("#run-live-status") == "Succeeded"
    assert page.inner_text(".field-status .readonly") == "Succeeded"  # the form's field too
    assert page.is_visible("#run-live-done")  # "reload to see the result"
    assert page.inner_text("#run-live-channel") == "ended"
    assert channel in page.evaluate("window.channelsSeen.join(' | ')")


CHANNEL_SPY = """
window.channelsSeen = [];
new MutationObserver(() => {
  const node = document.getElementById('run-live-channel');
  if (node) window.channelsSeen.push(node.textContent);
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def test_the_progress_bar_moves_through_the_event_stream_without_a_reload(
    browser,  # noqa: F811
    operator,  # noqa: F811
    broker_url,
):
    run = sleeper(operator, steps=6)
    web, base = start_asgi(broker_url)
    try:
        page = logged_in(browser, base)
        page.add_init_script(CHANNEL_SPY)
        page.goto(change_url(base, run))
        wait_for(lambda: page.inner_text("#run-live-channel") == "live", timeout=10,
                 what="the event stream to open")  # fmt: skip
        assert_moved_live(page, run, "live")

        page.reload()  # the times the run got meanwhile
        # Nothing on a run's page is editable: no Save button of any kind, a Close link instead.
        for name in ("_save", "_continue", "_addanother"):
            assert page.locator(f"[name={name}]").count() == 0
        assert page.locator(".submit-row .closelink").count() == 1
        # Every time with its zone's name.
        zone = settings.TIME_ZONE
        for field in ("created_at", "queued_at", "started_at", "heartbeat_at", "finished_at"):
            text = page.inner_text(f".field-{field} .readonly")
            assert text.endswith(f" {zone}"), (field, text)
            local = timezone.localtime(getattr(SleepRun.objects.get(pk=run.pk), field))
            assert text == f"{local:%Y-%m-%d %H:%M:%S} {zone}"
        page.goto(f"{base}/admin/sleeper/sleeprun/")
        assert page.inner_text(f"tr:has(a[href*='{run.pk}']) td.field-created_at").endswith(zone)
    finally:
        web.stop()


def test_the_page_reads_the_api_every_2s_where_the_stream_cannot_be_opened(
    browser,  # noqa: F811
    operator,  # noqa: F811
    broker_url,
):
    run = sleeper(operator, steps=6, seconds=2.0)  # about six polls while it runs
    web, base = start_web(broker_url)  # the WSGI development server: the stream answers 503
    try:
        page = logged_in(browser, base)
        page.add_init_script(CHANNEL_SPY)
        page.goto(change_url(base, run))
        wait_for(lambda: page.inner_text("#run-live-channel") == "updated every 2 s",
                 timeout=10, what="the page to fall back to reading the API")  # fmt: skip
        assert_moved_live(page, run, "updated every 2 s")
    finally:
        web.stop()


def test_the_cancel_and_retry_buttons_act_on_the_run(
    browser,  # noqa: F811
    operator,  # noqa: F811
    broker_url,
):
    run = sleeper(operator, steps=60)
    web, base = start_asgi(broker_url)
    try:
        page = logged_in(browser, base)
        page.goto(change_url(base, run))
        assert page.is_visible("#run-cancel") and not page.is_visible("#run-retry")
        lifecycle.dispatch(run)
        wait_for(lambda: page.get_attribute("#run-live-status", "data-status") == "running",
                 timeout=20, what="the page to show the run running")  # fmt: skip
        page.click("#run-cancel")
        page.wait_for_selector(".messagelist .success")
        wait_for(lambda: status_of(run) == RunStatus.CANCELLED, timeout=10, what="cancelled")
        wait_for(lambda: page.inner_text("#run-live-status") == "Cancelled", timeout=5,
                 what="the page to show it cancelled")  # fmt: skip
        assert not page.is_visible("#run-cancel") and page.is_visible("#run-retry")
        run.refresh_from_db()
        assert "cancel" in run.message.lower()

        page.click("#run-retry")
        page.wait_for_selector(".messagelist .success")
        wait_for(lambda: status_of(run) == RunStatus.RUNNING, timeout=20, what="running again")
        wait_for(lambda: page.get_attribute("#run-live-status", "data-status") == "running",
                 timeout=10, what="the page to follow the retried run")  # fmt: skip
        assert page.is_visible("#run-cancel")
        page.click("#run-cancel")
        wait_for(lambda: status_of(run) == RunStatus.CANCELLED, timeout=10, what="cancelled")
    finally:
        if status_of(run) not in TERMINAL:
            lifecycle.request_cancel(run)
        web.stop()


def test_only_staff_who_may_change_runs_get_the_buttons(client, django_user_model, operator):  # noqa: F811
    run = sleeper(operator, steps=1)
    viewer = django_user_model.objects.create_user("viewer", password=PASSWORD, is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_sleeprun"))
    client.force_login(viewer)
    page = client.get(f"/admin/sleeper/sleeprun/{run.pk}/change/").content.decode()
    assert 'id="run-live"' in page and 'id="run-cancel"' not in page
    assert client.post(f"/admin/sleeper/sleeprun/{run.pk}/cancel/").status_code == 403
    assert status_of(run) == RunStatus.PENDING

    client.force_login(operator)
    page = client.get(f"/admin/sleeper/sleeprun/{run.pk}/change/").content.decode()
    assert 'id="run-cancel"' in page and 'name="_save"' not in page
    assert client.get(f"/admin/sleeper/sleeprun/{run.pk}/cancel/").status_code == 405
    answer = client.post(f"/admin/sleeper/sleeprun/{run.pk}/cancel/")
    assert answer.status_code == 302 and status_of(run) == RunStatus.CANCELLED


def test_schedule_pages_name_the_zone_of_every_time(client, operator):  # noqa: F811
    sync_schedules()
    task = PeriodicTask.objects.get(name="scan async runs")
    task.last_run_at = timezone.now()
    task.save()
    TaskResult.objects.create(
        task_id="zone-check", task_name=task.task, periodic_task_name=task.name,
        status="SUCCESS", date_done=timezone.now(),
    )  # fmt: skip
    client.force_login(operator)
    zone = settings.TIME_ZONE
    page = client.get(f"/admin/django_celery_beat/periodictask/{task.pk}/change/")
    text = page.content.decode()
    for field in ("next_runs", "last_result_link", "last_run", "audit_trail"):
        block = text.split(f"field-{field}", 1)[1].split("form-row", 1)[0]
        assert zone in block, (field, block[:500])
    listing = client.get("/admin/django_celery_beat/periodictask/").content.decode()
    row = listing.split(task.name, 1)[1].split("</tr>", 1)[0]
    for column in ("next_run", "last_result_link", "last_run"):
        cell = row.split(f"field-{column}", 1)[1].split("</td>", 1)[0]
        assert zone in cell, (column, cell)
    trail = client.get("/admin/schedules/schedulechange/").content.decode()
    assert f" {zone}</td>" in trail or f" {zone}</a>" in trail
