"""The beat lease and the schedule audit trail, moved from the `runs` app to `schedules`.

A database made before the move has them as `runs_beatlease` and `runs_schedulechange` (created by
the removed `runs.0001_beat_lease_and_schedule_audit`). Those tables are renamed, rows and all, and
their content types move to `schedules`, so admin permissions granted on them survive. A fresh
database gets new tables. Reversing gives the tables back to `runs` when they came from there, and
drops them otherwise.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.db.migrations.recorder import MigrationRecorder

OLD_APP = "runs"
OLD_MIGRATION = (OLD_APP, "0001_beat_lease_and_schedule_audit")
MODELS = ("beatlease", "schedulechange")
OLD_INDEX = models.Index(fields=["object_type", "object_id", "at"], name="runs_schedchg_obj")
NEW_INDEX = models.Index(fields=["object_type", "object_id", "at"], name="schedules_change_obj")


def old_table(model_name):
    return f"{OLD_APP}_{model_name}"


def adopt_or_create_tables(apps, schema_editor):
    tables = set(schema_editor.connection.introspection.table_names())
    for name in MODELS:
        model = apps.get_model("schedules", name)
        if old_table(name) in tables:
            schema_editor.alter_db_table(model, old_table(name), model._meta.db_table)
            if name == "schedulechange":
                schema_editor.rename_index(model, OLD_INDEX, NEW_INDEX)
        else:
            schema_editor.create_model(model)


def came_from_runs(schema_editor):
    return OLD_MIGRATION in MigrationRecorder(schema_editor.connection).applied_migrations()


def give_back_or_drop_tables(apps, schema_editor):
    for name in MODELS:
        model = apps.get_model("schedules", name)
        if came_from_runs(schema_editor):
            if name == "schedulechange":
                schema_editor.rename_index(model, NEW_INDEX, OLD_INDEX)
            schema_editor.alter_db_table(model, model._meta.db_table, old_table(name))
        else:
            schema_editor.delete_model(model)


def relabel_content_types(apps, schema_editor, from_app, to_app):
    """Move the content types (and so the permissions on them) unless the target has its own."""
    types = apps.get_model("contenttypes", "ContentType").objects.using(
        schema_editor.connection.alias
    )
    taken = set(types.filter(app_label=to_app, model__in=MODELS).values_list("model", flat=True))
    types.filter(app_label=from_app, model__in=set(MODELS) - taken).update(app_label=to_app)


def adopt_content_types(apps, schema_editor):
    relabel_content_types(apps, schema_editor, OLD_APP, "schedules")


def give_back_content_types(apps, schema_editor):
    if came_from_runs(schema_editor):
        relabel_content_types(apps, schema_editor, "schedules", OLD_APP)


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        # The models enter the state here; their tables are made or adopted by the next step.
        migrations.SeparateDatabaseAndState(
            state_operations=[
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
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("at", models.DateTimeField(auto_now_add=True)),
                        ("actor_name", models.CharField(blank=True, max_length=150)),
                        ("source", models.CharField(max_length=32)),
                        ("action", models.CharField(choices=[("created", "Created"), ("changed", "Changed"), ("deleted", "Deleted"), ("run now", "Run Now")], max_length=16)),
                        ("object_type", models.CharField(max_length=32)),
                        ("object_id", models.PositiveIntegerField()),
                        ("object_repr", models.CharField(max_length=255)),
                        ("changes", models.JSONField(default=dict)),
                        ("actor", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        "ordering": ("-at", "-id"),
                        "indexes": [NEW_INDEX],
                    },
                ),
            ],
            database_operations=[],
        ),
        # Not atomic: MySQL and MariaDB cannot run DDL inside a transaction.
        migrations.RunPython(adopt_or_create_tables, give_back_or_drop_tables, atomic=False),
        migrations.RunPython(adopt_content_types, give_back_content_types),
    ]
