"""The move of the beat lease and the audit trail from `runs` to `schedules` keeps their rows, and a
fresh database still gets the tables. Against the real database, with the real migration."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection, migrations, models
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder
from django.db.migrations.state import ProjectState
from django.utils import timezone

from schedules.beat import last_tick
from schedules.models import BeatLease, ScheduleChange

pytestmark = pytest.mark.django_db(transaction=True)

NEW = ("schedules", "0001_initial")
OLD = ("runs", "0001_beat_lease_and_schedule_audit")
OLD_TABLES = {"runs_beatlease", "runs_schedulechange"}
NEW_TABLES = {"schedules_beatlease", "schedules_schedulechange"}
OLD_INDEX_FIELDS = ["object_type", "object_id", "at"]


class OldMigration(migrations.Migration):
    """`runs.0001_beat_lease_and_schedule_audit` as it was before the move."""

    operations = [
        migrations.CreateModel(
            name="BeatLease",
            fields=[
                ("name", models.CharField(max_length=64, primary_key=True, serialize=False)),
                ("holder", models.CharField(max_length=255)),
                ("acquired_at", models.DateTimeField()),
                ("expires_at", models.DateTimeField()),
                ("ticked_at", models.DateTimeField()),
            ],
        ),
        migrations.CreateModel(
            name="ScheduleChange",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False)),
                ("at", models.DateTimeField(auto_now_add=True)),
                ("actor_name", models.CharField(blank=True, max_length=150)),
                ("source", models.CharField(max_length=32)),
                ("action", models.CharField(max_length=16)),
                ("object_type", models.CharField(max_length=32)),
                ("object_id", models.PositiveIntegerField()),
                ("object_repr", models.CharField(max_length=255)),
                ("changes", models.JSONField(default=dict)),
                (
                    "actor",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=models.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ("-at", "-id"),
                "indexes": [models.Index(fields=OLD_INDEX_FIELDS, name="runs_schedchg_obj")],
            },
        ),
    ]


def migrate(target: str) -> None:
    """`manage.py migrate schedules <target>`, as an operator upgrading or rolling back runs it."""
    call_command("migrate", "schedules", target, verbosity=0)


def tables() -> set[str]:
    return set(connection.introspection.table_names())


def index_names(table: str) -> set[str]:
    with connection.cursor() as cursor:
        return set(connection.introspection.get_constraints(cursor, table))


@pytest.fixture
def back_to_normal():
    """Whatever a test leaves, the next one finds the tables under `schedules` and no `runs` row."""
    yield
    migrate(NEW[1])
    MigrationRecorder(connection).migration_qs.filter(app=OLD[0], name=OLD[1]).delete()
    with connection.schema_editor() as editor:
        for table in OLD_TABLES & tables():
            editor.execute(f"DROP TABLE {editor.quote_name(table)}")
    ContentType.objects.clear_cache()


@pytest.fixture
def old_database(back_to_normal, django_user_model):
    """A database as it was before the move: runs' tables with rows, runs' content types."""
    migrate("zero")
    assert not NEW_TABLES & tables()
    now_state = MigrationExecutor(connection).loader.project_state()
    # The old migration is no longer on disk (runs' migrations start again with the cap's lock),
    # so its models are added to the state by hand.
    state = ProjectState(now_state.models, real_apps=now_state.real_apps - {OLD[0]})
    with connection.schema_editor() as editor:
        state = OldMigration(OLD[1], OLD[0]).apply(state, editor)
    MigrationRecorder(connection).record_applied(*OLD)
    ContentType.objects.filter(app_label="schedules").update(app_label="runs")
    ContentType.objects.clear_cache()

    operator = django_user_model.objects.create_user("operator", password="a-long-password-5")
    viewing = Permission.objects.get(content_type__app_label="runs", codename="view_schedulechange")
    operator.user_permissions.add(viewing)
    now = timezone.now().replace(microsecond=0)
    old_lease = state.apps.get_model("runs", "BeatLease")
    old_lease.objects.create(
        name="beat",
        holder="web-1:4242:cafe0123",
        acquired_at=now - timedelta(minutes=5),
        expires_at=now + timedelta(seconds=15),
        ticked_at=now,
    )
    old_change = state.apps.get_model("runs", "ScheduleChange")
    for object_id, source in ((7, "admin"), (8, "sync_schedules")):
        old_change.objects.create(
            actor_id=operator.pk if source == "admin" else None,
            actor_name="operator" if source == "admin" else "",
            source=source,
            action="changed",
            object_type="periodictask",
            object_id=object_id,
            object_repr=f"task {object_id}",
            changes={"enabled": [True, False]},
        )
    assert tables() >= OLD_TABLES
    return {
        "operator": operator,
        "now": now,
        "changes": list(old_change.objects.order_by("id").values()),
    }


def test_an_existing_database_keeps_its_rows_and_permissions_when_the_tables_move(old_database):
    migrate(NEW[1])

    assert tables() >= NEW_TABLES and not OLD_TABLES & tables()
    assert "schedules_change_obj" in index_names("schedules_schedulechange")
    assert last_tick() == old_database["now"]
    assert BeatLease.objects.get().holder == "web-1:4242:cafe0123"
    assert list(ScheduleChange.objects.order_by("id").values()) == old_database["changes"]
    assert ScheduleChange.objects.get(source="admin").actor == old_database["operator"]
    operator = type(old_database["operator"]).objects.get(pk=old_database["operator"].pk)
    assert operator.has_perm("schedules.view_schedulechange")  # the content type moved with it
    moved = ["beatlease", "schedulechange"]
    assert not ContentType.objects.filter(app_label="runs", model__in=moved).exists()
    # The next row continues the old ids.
    newest = ScheduleChange.objects.create(
        source="api", action="created", object_type="periodictask", object_id=9, object_repr="x"
    )
    assert newest.pk > max(row["id"] for row in old_database["changes"])


def test_reversing_the_move_gives_the_tables_and_rows_back_to_runs(old_database):
    migrate(NEW[1])
    migrate("zero")

    assert tables() >= OLD_TABLES and not NEW_TABLES & tables()
    assert "runs_schedchg_obj" in index_names("runs_schedulechange")
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM runs_schedulechange")
        assert cursor.fetchone()[0] == 2
    assert ContentType.objects.filter(app_label="runs", model="schedulechange").exists()


def test_a_fresh_database_gets_empty_tables_and_reversing_drops_them(back_to_normal):
    migrate("zero")
    assert not NEW_TABLES & tables() and not OLD_TABLES & tables()

    migrate(NEW[1])
    assert tables() >= NEW_TABLES
    assert "schedules_change_obj" in index_names("schedules_schedulechange")
    assert not ScheduleChange.objects.exists() and last_tick() is None
