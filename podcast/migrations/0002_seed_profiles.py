from django.db import migrations


def seed(apps, schema_editor):
    from podcast.profiles import seed_profiles

    seed_profiles(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("podcast", "0001_initial"),
    ]

    # Reversing leaves the profiles: runs may still point at them.
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
