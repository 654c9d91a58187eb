from django.db import migrations


def seed(apps, schema_editor):
    from podcast.profiles import seed_profiles

    # Creates only what is missing: the `mandarin` profiles on an installation seeded before them.
    seed_profiles(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("podcast", "0005_podcastrun_sources_snapshot"),
    ]

    # Reversing leaves the profiles: runs may still point at them.
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
