"""Workers that share no disk: each is started as a machine of its own would be (its own
MEDIA_ROOT and temporary folder), with the same database, broker and S3 bucket (a real
SeaweedFS, MEDIA_STORAGE=s3).

- A video whose canvas parts are pinned to two workers (TASK_QUEUE_ROUTES): the script and the
  narration on machine A, the pictures and the compose on machine B, so compose renders A's
  narration with pictures from a part that has ended, and both reach it only through the bucket.
- A podcast whose worker dies after it has spoken some lines: the next attempt, on a third
  machine, downloads those lines from the bucket instead of speaking them again.

Which machine ran what is read from the run's history (the pid of each change, in which worker's
process session) and from each worker's log; the files are checked in the bucket, probed after
download, and looked for on the machines' own disks, where none may be left.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from engines.media import probe
from ops.testing import RedisServer, ServiceProcess, broker_of, start_worker, wait_for
from ops.testing_storage import SeaweedFS
from podcast.models import EpisodeProfile, PodcastRun, Source, SpeakerProfile
from podcast.profiles import seed_profiles
from runs import artifacts, maintenance
from runs.models import TERMINAL, RunStatus
from video.models import VideoResult, VideoRun

pytestmark = pytest.mark.django_db(transaction=True)

# Machine A runs the script and the narration, machine B the pictures and the compose.
ROUTES = {
    "video.write_script": "machine_a",
    "video.speak_narration": "machine_a",
    "video.draw_characters": "machine_b",
    "video.compose": "machine_b",
}
CAST = [
    {"name": "Ada", "description": "a lighthouse keeper in a blue coat"},
    {"name": "Ben", "description": "a red-haired fisherman", "voice": "en-gb"},
]
SCRIPT = [
    {"speaker": "Ada", "text": "The tide turns at dawn.", "setting": "a harbour at sunrise"},
    {"speaker": "Ben", "text": "Then we sail before the gulls wake."},
    {"speaker": "Ada", "text": "Bring the lantern."},
]


class Machine:
    """A worker with a MEDIA_ROOT and a temporary folder of its own, as on another machine."""

    def __init__(self, name: str, root: Path, broker_url: str, s3: SeaweedFS, queues: str):
        self.name = name
        self.media, self.tmp = root / name / "media", root / name / "tmp"
        self.tmp.mkdir(parents=True)
        env = s3.env(
            MEDIA_ROOT=str(self.media),
            TMPDIR=str(self.tmp),
            TASK_QUEUE_ROUTES=",".join(f"{task}={queue}" for task, queue in ROUTES.items()),
        )
        self.worker: ServiceProcess = start_worker(broker_url, concurrency=1, queues=queues, **env)

    def session_pids(self) -> set[int]:
        """The worker's processes (it leads a session of its own): the main one, its pool."""
        found = set()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.getsid(int(entry.name)) == self.worker.process.pid:
                        found.add(int(entry.name))
                except OSError:
                    continue
        return found

    def ran(self, task: str) -> bool:
        return f"Task {task}[" in self.worker.log()

    def files_left(self) -> list[Path]:
        """Files on this machine's own disk: its MEDIA_ROOT, and temporary folders but the
        prefork pool's own (pymp-*, there while the worker lives)."""
        media = [p for p in self.media.rglob("*") if p.is_file()] if self.media.exists() else []
        tmp = [p for p in self.tmp.iterdir() if not p.name.startswith("pymp-")]
        return media + tmp

    def kill(self) -> None:
        """SIGKILL the whole worker, by its process group: the machine is gone."""
        os.killpg(self.worker.process.pid, signal.SIGKILL)
        self.worker.process.wait(timeout=10)


@pytest.fixture(scope="module")
def broker() -> Iterator[RedisServer]:
    """A broker of this module's own: no other worker of the suite (whose media is on the
    filesystem) may take these runs' tasks."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def machines(django_db_setup, django_db_blocker, broker, seaweedfs, tmp_path_factory):
    root = tmp_path_factory.mktemp("machines")
    started: dict[str, Machine] = {}
    with django_db_blocker.unblock():
        try:
            started["a"] = Machine("a", root, broker.url, seaweedfs, "video,machine_a,podcast")
            started["b"] = Machine("b", root, broker.url, seaweedfs, "machine_b")
            yield started
        finally:
            for machine in started.values():
                machine.worker.stop()


@pytest.fixture
def on_the_bucket(s3_media, broker) -> Iterator[SeaweedFS]:
    """This process (the web side) sends to the module's broker and reads the same bucket."""
    with broker_of(broker.url):
        yield s3_media


def wait_finished(run, timeout: float = 240):
    def finished() -> bool:
        run.refresh_from_db()
        return run.status in TERMINAL

    wait_for(finished, timeout=timeout, interval=0.3, what=f"run {run.pk} to finish")
    return run


def history(api, kind: str, run) -> list[dict]:
    answer = api.get(f"/api/{kind}/{run.pk}/history/")
    assert answer.status_code == 200, answer.content
    return answer.json()["results"]


def test_a_videos_parts_on_two_machines_meet_only_in_the_bucket(
    api, machines, on_the_bucket, tmp_path
):
    a, b = machines["a"], machines["b"]
    body = {"title": "Before the gulls", "characters": CAST, "script": SCRIPT,
            "resolution": "640x360"}  # fmt: skip
    answer = api.post("/api/videos/", body, format="json")
    assert answer.status_code == 202, answer.json()
    run = wait_finished(VideoRun.objects.get(pk=answer.json()["id"]))
    assert run.status == RunStatus.SUCCEEDED, (run.message, run.error, b.worker.log()[-2000:])

    # Each part ran on the machine its queue was routed to, and only there.
    for task, queue in ROUTES.items():
        here, there = (a, b) if queue == "machine_a" else (b, a)
        assert here.ran(task) and not there.ran(task), task
    events = history(api, "videos", run)
    claimed = next(e for e in events if e["to_status"] == RunStatus.RUNNING)
    succeeded = next(e for e in events if e["to_status"] == RunStatus.SUCCEEDED)
    assert claimed["pid"] in a.session_pids()  # video.generate, on A
    assert succeeded["pid"] in b.session_pids()  # video.compose, on B

    # The artifacts are in the bucket, named by run id; the spoken lines go after success.
    folder = f"videos/{run.pk}/"
    expected = {"character-0.png", "character-1.png", "scene-0.png", "scene-1.png",
                "scene-2.png", "narration.wav", "video.mp4"}  # fmt: skip
    wait_for(lambda: {key.removeprefix(folder) for key in on_the_bucket.keys(folder)} == expected,
             timeout=10, what=f"exactly {expected} in the bucket")  # fmt: skip
    result = VideoResult.objects.get(run=run)
    assert result.video.name == f"{folder}video.mp4"
    assert result.audio.name == f"{folder}narration.wav"
    video = probe(artifacts.local_copy(result.video.name, tmp_path))
    narration = probe(artifacts.local_copy(result.audio.name, tmp_path))
    picture = video.first("video")
    assert picture is not None and (picture.width, picture.height) == (640, 360)
    assert video.first("audio") is not None
    assert abs(video.duration_seconds - narration.duration_seconds) <= 0.5
    assert video.duration_seconds == pytest.approx(result.duration_seconds, abs=0.1)

    # Nothing on either machine's own disk: no media, and no temporary folder once the last
    # part has ended (it goes just after the run shows succeeded).
    wait_for(lambda: a.files_left() == [] and b.files_left() == [], timeout=10,
             what="the machines' disks to hold nothing of the run")  # fmt: skip


def test_a_podcast_resumes_on_another_machine_from_the_lines_in_the_bucket(
    api, user, machines, on_the_bucket, broker, seaweedfs, tmp_path_factory, tmp_path
):
    a = machines["a"]
    seed_profiles()
    EpisodeProfile.objects.create(
        slug="medium", name="Medium test episode", segments=2, target_words=260,
        intro="This is {episode}.", outro="Bye from {episode}.", language="en",
    )  # fmt: skip
    source = Source.objects.create(owner=user, title="Bees", content=BEES)
    body = {"episode_profile": "medium", "speaker_profile": two_speakers().slug,
            "episode_name": "Bees at work", "source_ids": [source.pk]}  # fmt: skip
    answer = api.post("/api/podcasts/", body, format="json")
    assert answer.status_code == 202, answer.json()
    run = PodcastRun.objects.get(pk=answer.json()["id"])

    def spoken() -> int:
        run.refresh_from_db()
        assert run.status not in TERMINAL, f"the episode ended before its worker died: {run}"
        return sum(name.startswith("speech ") for name in run.checkpoints)

    wait_for(lambda: spoken() >= 2, timeout=120, interval=0.05, what="two lines spoken on A")
    on_a = a.session_pids()
    a.kill()  # machine A dies in the middle of the speech
    paid_for = {n: v for n, v in run.checkpoints.items() if n.startswith("speech ")}
    assert all(key in seaweedfs.keys(f"podcasts/{run.pk}/") for key in paid_for.values())

    c = Machine("c", tmp_path_factory.mktemp("machine-c"), broker.url, seaweedfs, "podcast")
    try:
        # The scan's rescue: the run's heartbeat stopped, so it is sent again, and C takes it.
        wait_for(lambda: maintenance.rescue_stale()["redispatched"] == 1, timeout=30,
                 interval=0.5, what="the scan to find the run stale")  # fmt: skip
        run = wait_finished(run)
        assert (run.status, run.attempt) == (RunStatus.SUCCEEDED, 2), (run.message, run.error)

        events = history(api, "podcasts", run)
        claims = [e for e in events if e["to_status"] == RunStatus.RUNNING]
        assert [e["attempt"] for e in claims] == [1, 2]
        assert claims[0]["pid"] in on_a and claims[1]["pid"] in c.session_pids()
        # What A paid for, C took from the bucket: the checkpoints are A's, not spoken again.
        assert {n: run.checkpoints[n] for n in paid_for} == paid_for

        mp3 = f"podcasts/{run.pk}.mp3"  # and the lines go after success
        wait_for(lambda: seaweedfs.keys(f"podcasts/{run.pk}") == [mp3], timeout=10,
                 what="the MP3 alone in the bucket")  # fmt: skip
        episode = probe(artifacts.local_copy(run.result.audio.name, tmp_path))
        sound = episode.first("audio")
        assert sound is not None and sound.codec == "mp3"
        assert episode.duration_seconds == pytest.approx(run.result.duration_seconds, abs=0.3)
        assert len(run.result.transcript) > len(paid_for)  # C spoke the rest
        wait_for(lambda: c.files_left() == [], timeout=10, what="nothing left on C's disk")
    finally:
        c.worker.stop()


def two_speakers() -> SpeakerProfile:
    profile = SpeakerProfile.objects.get(slug="two_hosts")
    assert profile.speakers.count() >= 2
    return profile


BEES = " ".join(
    f"{subject} number {i} {verb} {thing} before noon."
    for i, (subject, verb, thing) in enumerate(
        (s, v, t)
        for s in ("The hive", "A forager", "The queen", "Each drone", "A nurse bee")
        for v in ("visits", "guards", "cleans", "warms", "maps")
        for t in ("the clover field", "the brood comb", "the north entrance")
    )
)
