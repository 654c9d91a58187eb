"""Run artifacts through Django's storage (runs/artifacts.py) on the default filesystem backend."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files import File

from runs import artifacts, lifecycle
from runs.tests.sleeper.models import SleepRun


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def local_file(folder: Path, name: str, content: bytes) -> Path:
    path = folder / name
    path.write_bytes(content)
    return path


def stored(name: str) -> bytes:
    with artifacts.storage().open(name, "rb") as handle:
        return handle.read()


def test_the_default_storage_is_the_artifact_storage_under_media_root(media_root):
    assert isinstance(artifacts.storage(), artifacts.ArtifactStorage)
    assert Path(artifacts.storage().path("videos/x/a.png")) == media_root / "videos/x/a.png"


def test_save_replaces_an_artifact_of_the_same_name_and_leaves_no_other_file(tmp_path, media_root):
    name = "videos/run-1/scene-0.png"
    assert artifacts.save(name, local_file(tmp_path, "a.png", b"first")) == name
    assert artifacts.save(name, local_file(tmp_path, "b.png", b"second")) == name

    assert stored(name) == b"second"
    assert [p.name for p in (media_root / "videos/run-1").iterdir()] == ["scene-0.png"]
    assert (media_root / name).stat().st_mode & 0o777 == 0o644


def test_a_reader_sees_the_old_artifact_until_the_new_one_is_whole(tmp_path):
    name = "podcasts/run-2.mp3"
    artifacts.save(name, local_file(tmp_path, "old.mp3", b"old episode"))
    seen_meanwhile = []

    class SlowUpload(File):
        def chunks(self, chunk_size=None):
            yield b"new "
            seen_meanwhile.append(stored(name))  # half of the new file is written by now
            yield b"episode"

    assert artifacts.storage().save(name, SlowUpload(None, name="run-2.mp3")) == name

    assert seen_meanwhile == [b"old episode"]
    assert stored(name) == b"new episode"


def test_local_copy_downloads_into_the_folder_and_names_a_missing_artifact(tmp_path):
    source = local_file(tmp_path, "line.wav", b"RIFF" + bytes(600_000))
    artifacts.save("podcasts/run-3/line-00000.wav", source)
    work = tmp_path / "work"
    work.mkdir()

    copy = artifacts.local_copy("podcasts/run-3/line-00000.wav", work)

    assert copy == work / "line-00000.wav"
    assert copy.read_bytes() == source.read_bytes()
    with pytest.raises(artifacts.ArtifactMissing, match=r"podcasts/run-3/line-00001\.wav"):
        artifacts.local_copy("podcasts/run-3/line-00001.wav", work)
    assert sorted(p.name for p in work.iterdir()) == ["line-00000.wav"]  # no partial copy


def test_delete_folder_removes_every_artifact_under_it_and_nothing_else(tmp_path, media_root):
    file = local_file(tmp_path, "x.bin", b"x")
    for name in ("videos/run-4/a.png", "videos/run-4/deeper/b.wav", "videos/run-5/a.png"):
        artifacts.save(name, file)

    assert sorted(artifacts.names_under("videos/run-4")) == [
        "videos/run-4/a.png",
        "videos/run-4/deeper/b.wav",
    ]
    assert artifacts.delete_folder("videos/run-4") == 2

    assert not (media_root / "videos/run-4").exists()
    assert artifacts.exists("videos/run-5/a.png")
    assert artifacts.delete_folder("videos/never-made") == 0
    artifacts.delete("videos/run-5/gone.png")  # deleting what is gone is fine


@pytest.mark.django_db
def test_each_attempt_works_in_a_private_folder_of_its_own_that_goes_when_it_ends(
    user, settings, tmp_path
):
    settings.RUN_TMP_DIR = str(tmp_path / "run-tmp")
    run = SleepRun.objects.create(owner=user, attempt=2)
    ctx = lifecycle.RunContext(run)
    other = lifecycle.RunContext(SleepRun.objects.create(owner=user, attempt=2))

    folder = ctx.tmp_dir
    (folder / "partial.wav").write_bytes(b"...")

    assert folder.parent == tmp_path / "run-tmp"
    assert folder.name.startswith(f"run-{run.pk}-a2-")
    assert other.tmp_dir != folder
    ctx.remove_tmp()
    assert not folder.exists()
    other.remove_tmp()


def test_background_saves_answer_in_order_and_raise_a_failed_save_in_the_caller(tmp_path):
    files = [local_file(tmp_path, f"line-{n}.wav", bytes([n]) * 1000) for n in range(3)]
    with artifacts.BackgroundSaves() as saves:
        for n, file in enumerate(files):
            saves.save(f"speech {n + 1}", f"podcasts/run-6/line-{n}.wav", file)
        early = saves.done()  # whatever finished so far, in order, each once
        rest = saves.wait()

    assert early + rest == [(f"speech {n + 1}", f"podcasts/run-6/line-{n}.wav") for n in range(3)]
    assert [stored(f"podcasts/run-6/line-{n}.wav") for n in range(3)] == [
        file.read_bytes() for file in files
    ]
    with artifacts.BackgroundSaves() as saves:
        saves.save("speech 1", "podcasts/run-6/line-9.wav", tmp_path / "never-spoken.wav")
        with pytest.raises(FileNotFoundError):
            saves.wait()
