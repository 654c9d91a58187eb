from django.db import models

from runs.models import Run


class SleepRun(Run):
    task_name = "sleeper.generate"
    artifact_folder = "sleeper"

    steps = models.PositiveSmallIntegerField(default=1)
    seconds_per_step = models.FloatField(default=0)
    fail_with = models.CharField(max_length=100, blank=True)  # "error" or "transient" at the end
    temp_marker = models.CharField(max_length=500, blank=True)  # a temp file the run wrote


class SleepResult(models.Model):
    run = models.OneToOneField(SleepRun, on_delete=models.CASCADE, related_name="result")
    steps_done = models.PositiveSmallIntegerField()

    def __str__(self) -> str:
        return f"result of {self.run_id}"


class SleepEffect(models.Model):
    """One row per completed execution of the steps: the count of side effects."""

    run = models.ForeignKey(SleepRun, on_delete=models.CASCADE, related_name="effects")
    attempt = models.PositiveSmallIntegerField()

    def __str__(self) -> str:
        return f"effect of {self.run_id} (attempt {self.attempt})"


class NoopRun(Run):
    """A run whose steps do nothing: the lifecycle's own cost, for bench/lifecycle.py."""

    task_name = "sleeper.noop_run"
