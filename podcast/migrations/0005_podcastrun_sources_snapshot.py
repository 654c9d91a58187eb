# A run keeps the ids and titles of its sources after a source is deleted (issue 11, point 8).

from django.db import migrations, models


def snapshot_existing_runs(apps, schema_editor):
    PodcastRun = apps.get_model("podcast", "PodcastRun")
    for run in PodcastRun.objects.prefetch_related("sources").iterator(chunk_size=500):
        record = [{"id": s.pk, "title": s.title} for s in sorted(run.sources.all(), key=lambda s: s.pk)]
        if record:
            PodcastRun.objects.filter(pk=run.pk).update(sources_snapshot=record)


class Migration(migrations.Migration):
    dependencies = [
        ("podcast", "0004_run_checkpoints"),
    ]

    operations = [
        migrations.AddField(
            model_name="podcastrun",
            name="sources_snapshot",
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.RunPython(snapshot_existing_runs, migrations.RunPython.noop),
    ]
