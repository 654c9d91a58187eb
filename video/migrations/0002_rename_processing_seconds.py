from django.db import migrations


class Migration(migrations.Migration):
    """The same name as the podcast result's: processing_time_seconds (the API says processing_time)."""

    dependencies = [
        ("video", "0001_video_runs"),
    ]

    operations = [
        migrations.RenameField(
            model_name="videoresult",
            old_name="processing_seconds",
            new_name="processing_time_seconds",
        ),
    ]
