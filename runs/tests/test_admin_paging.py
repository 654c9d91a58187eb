"""The run admin's page count at any size: an estimate for a large whole table, a bounded count
for a filtered list, and a number of queries that does not grow with the rows shown."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from runs import admin_paging
from runs.admin_paging import EstimatedCountPaginator, estimated_rows
from runs.models import RunStatus
from runs.tests.sleeper.models import SleepRun

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/sleeper/sleeprun/"
mariadb_only = pytest.mark.skipif(
    connection.vendor != "mysql", reason="the estimate comes from MySQL's table statistics"
)


def counts_sent(queries) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]


@mariadb_only
@pytest.mark.django_db(transaction=True)  # the statistics see committed rows only
def test_a_large_whole_table_is_counted_from_the_statistics(user, monkeypatch):
    SleepRun.objects.bulk_create(SleepRun(owner=user) for _ in range(40))
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE TABLE `{SleepRun._meta.db_table}`")
        cursor.fetchall()
    monkeypatch.setattr(admin_paging, "ESTIMATE_ABOVE", 10)

    with CaptureQueriesContext(connection) as queries:
        count = EstimatedCountPaginator(SleepRun.objects.all(), 10).count

    assert counts_sent(queries) == []
    assert count == estimated_rows(SleepRun, "default") and count > 10


def test_a_small_table_is_counted_exactly(user):
    SleepRun.objects.bulk_create(SleepRun(owner=user) for _ in range(12))

    with CaptureQueriesContext(connection) as queries:
        count = EstimatedCountPaginator(SleepRun.objects.all(), 10).count

    assert count == 12 and len(counts_sent(queries)) == 1


def test_a_filtered_list_is_counted_up_to_the_limit(user, monkeypatch):
    SleepRun.objects.bulk_create(SleepRun(owner=user, status=RunStatus.FAILED) for _ in range(8))
    SleepRun.objects.bulk_create(SleepRun(owner=user) for _ in range(3))
    monkeypatch.setattr(admin_paging, "COUNT_LIMIT", 5)

    failed = SleepRun.objects.filter(status=RunStatus.FAILED)
    pending = SleepRun.objects.filter(status=RunStatus.PENDING)

    assert EstimatedCountPaginator(failed, 10).count == 5
    assert EstimatedCountPaginator(pending, 10).count == 3


def test_the_changelist_sends_as_many_queries_for_150_runs_as_for_3(
    admin_client, user, other_user, django_assert_max_num_queries
):
    SleepRun.objects.bulk_create(SleepRun(owner=user) for _ in range(3))
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get(CHANGELIST).status_code == 200
    for owner in (user, other_user):
        SleepRun.objects.bulk_create(SleepRun(owner=owner) for _ in range(75))

    with django_assert_max_num_queries(10):
        page = admin_client.get(CHANGELIST)

    assert page.status_code == 200 and "bob" in page.content.decode()
    with CaptureQueriesContext(connection) as many:
        admin_client.get(CHANGELIST)
    assert len(many) == len(few)


def test_a_filtered_changelist_never_counts_the_whole_table(admin_client, user):
    SleepRun.objects.bulk_create(SleepRun(owner=user, status=RunStatus.FAILED) for _ in range(3))

    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get(CHANGELIST, {"status__exact": "failed"})

    assert page.status_code == 200
    assert counts_sent(queries) and all("LIMIT" in sql for sql in counts_sent(queries))


def test_only_indexed_columns_sort_the_changelist(admin_client, user):
    SleepRun.objects.bulk_create(SleepRun(owner=user, progress=p) for p in (30, 10, 20))
    page = admin_client.get(CHANGELIST)
    sortable = {column["text"] for column in page.context["result_headers"] if column["sortable"]}
    assert sortable == {"id", "created at"}

    # A hand-written ?o= naming the progress column does not sort by it.
    progress = [c["text"] for c in page.context["result_headers"]].index("progress")
    listed = admin_client.get(CHANGELIST, {"o": str(progress)})
    order_by = str(listed.context["cl"].queryset.query).split("ORDER BY")[1]
    assert "progress" not in order_by
