#!/usr/bin/env python
"""API list page 1 and the admin changelist for one user with 10k, 100k and 1M runs.

A bench database is filled step by step (one ORM batch per owner, then INSERT ... SELECT doubling,
so a million rows take a minute or two, not hours) with podcast and video runs for one user
("bench"), plus runs of three other users; 90 % succeeded with a result row, the rest failed,
cancelled, timed out or active, created at random moments of the past year. At each size it
times, through Django's test client (the whole Django and DRF stack in this process, no HTTP
server or network), page 1 of `GET /api/podcasts/` and `/api/videos/`, page 2 (the next link),
a status-filtered page, and the admin's podcast run changelist as a superuser: the median of
`--repeat` requests after one warm-up, with the SQL queries each sends.

    .venv/bin/python bench/lists.py [--sizes 10000,100000,1000000] [--others 50000]
                                    [--repeat 7] [--keep] [--explain]

Environment: DATABASE_URL (default a bench_lists database on the local MariaDB, created fresh,
migrated, and dropped at the end unless --keep).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import NamedTuple

from common import configure, database_name, mysql, prepare_database

configure(
    "bench_lists",
    broker_db=5,
    MEDIA_ROOT=tempfile.mkdtemp(prefix="bench-lists-media-"),
    THROTTLE_SUBMIT_RATE="100000/minute",
)
DB_NAME = database_name()
API_TARGET_MS, ADMIN_TARGET_MS, ADMIN_MAX_QUERIES = 100, 300, 10
OTHER_USERS = 3
SEED_ROWS = 1000  # the first batch per owner, made by the ORM; doubling copies it
STATUSES = ["succeeded"] * 90 + ["failed"] * 6 + ["cancelled", "timed_out", "queued", "running"]
YEAR_MICROSECONDS = 365 * 24 * 3600 * 10**6
HOST = "localhost"


def main() -> None:
    options = arguments()
    if DB_NAME is None:
        sys.exit("bench/lists.py measures MariaDB/MySQL: set DATABASE_URL=mysql://...")
    prepare_database(fresh=True)
    import django

    django.setup()
    rows = []
    try:
        kinds = set_up()
        fill_others(kinds, options.others)
        for size in options.sizes:
            seconds = fill_owner(kinds, size)
            load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
            print(f"\n{size:,} runs of each kind for the bench user (filled in {seconds:.0f} s)")
            print(f"  load average before measuring: {load}", flush=True)
            rows += measure(kinds, size, options)
    finally:
        from django.db import connections

        connections.close_all()
        if not options.keep:
            mysql(f"DROP DATABASE IF EXISTS `{DB_NAME}`")
    report(rows, options)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="runs of the bench user")
    parser.add_argument("--others", type=int, default=50_000, help="runs of the other users")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN of page 1")
    options = parser.parse_args()
    options.sizes = sorted(int(size) for size in options.sizes.split(","))
    return options


# Filling


def set_up() -> dict:
    """The users, a source, and one template result per kind; returns what the fill needs."""
    from django.contrib.auth import get_user_model

    from podcast.models import EpisodeProfile, PodcastResult, PodcastRun, Source, SpeakerProfile
    from video.models import VideoResult, VideoRun

    users = get_user_model().objects
    owner = users.create_user("bench", password="bench-password-1")
    others = [users.create_user(f"other{i}") for i in range(OTHER_USERS)]
    users.create_superuser("benchadmin", password="bench-password-1")
    source = Source.objects.create(owner=owner, title="Notes", content="Words to talk about.")
    podcast = {
        "episode_profile": EpisodeProfile.objects.get(slug="default"),
        "speaker_profile": SpeakerProfile.objects.get(slug="two_hosts"),
        "episode_name": "An episode",
        "sources_snapshot": [{"id": source.pk, "title": source.title}],
    }
    video = {"title": "A video", "prompt": "A cat explains tides.", "characters": [{"name": "Cat"}]}
    template = PodcastRun.objects.create(owner=others[0], status="succeeded", **podcast)
    template.sources.add(source)
    PodcastResult.objects.create(
        run=template,
        audio=f"podcasts/{template.pk}.mp3",
        duration_seconds=61.5,
        outline=[{"title": "Tides", "points": ["moon", "sun"]}],
        transcript=[{"speaker": "Ann", "voice": "en-us", "text": "Hi.", "start": 0, "end": 1}],
        processing_time_seconds=9.0,
    )
    clip = VideoRun.objects.create(owner=others[0], status="succeeded", **video)
    VideoResult.objects.create(
        run=clip, video=f"videos/{clip.pk}/video.mp4", duration_seconds=12.0, width=1280,
        height=720, processing_time_seconds=20.0,
    )  # fmt: skip
    return {
        "owner": owner,
        "others": others,
        "source": source,
        "kinds": [
            (PodcastRun, PodcastResult, template, podcast),
            (VideoRun, VideoResult, clip, video),
        ],
    }


def fill_others(kinds: dict, rows: int) -> None:
    for user in kinds["others"]:
        for run_model, _, _, fields in kinds["kinds"]:
            grow(run_model, user, rows // OTHER_USERS, fields)
    complete(kinds)


def fill_owner(kinds: dict, rows: int) -> float:
    started = time.monotonic()
    for run_model, _, _, fields in kinds["kinds"]:
        grow(run_model, kinds["owner"], rows, fields)
    complete(kinds)
    return time.monotonic() - started


def grow(run_model, owner, rows: int, fields: dict) -> None:
    """Give `owner` `rows` runs: one ORM batch, then copies of their rows (doubling)."""
    from django.db import connection

    have = run_model.objects.filter(owner=owner).count()
    if have == 0:
        run_model.objects.bulk_create(
            run_model(owner=owner, status=STATUSES[i % len(STATUSES)], attempt=1, **fields)
            for i in range(min(rows, SEED_ROWS))
        )
        have = min(rows, SEED_ROWS)
    table = run_model._meta.db_table
    columns = [f.column for f in run_model._meta.concrete_fields if f.column != "id"]
    moment = f"NOW(6) - INTERVAL FLOOR(RAND() * {YEAR_MICROSECONDS}) MICROSECOND"
    select = ", ".join(moment if c == "created_at" else f"`{c}`" for c in columns)
    with connection.cursor() as cursor:
        while have < rows:
            cursor.execute(
                f"INSERT INTO `{table}` (id, {', '.join(f'`{c}`' for c in columns)}) "
                f"SELECT REPLACE(UUID(), '-', ''), {select} FROM `{table}` "
                f"WHERE owner_id = %s LIMIT {rows - have}",
                [owner.pk],
            )
            have += cursor.rowcount


def complete(kinds: dict) -> None:
    """A result row (a copy of the template's) for every succeeded run without one, each
    podcast linked to the source, and fresh index statistics."""
    from django.db import connection

    from podcast.models import PodcastRun

    with connection.cursor() as cursor:
        for run_model, result_model, template, _ in kinds["kinds"]:
            copy_results(cursor, run_model, result_model, template)
        links = PodcastRun.sources.through._meta.db_table
        cursor.execute(
            f"INSERT INTO `{links}` (podcastrun_id, source_id) SELECT r.id, %s "
            f"FROM `{PodcastRun._meta.db_table}` r LEFT JOIN `{links}` l ON l.podcastrun_id = r.id "
            "WHERE l.id IS NULL",
            [kinds["source"].pk],
        )
        for run_model, result_model, _, _ in kinds["kinds"]:
            cursor.execute(f"ANALYZE TABLE `{run_model._meta.db_table}`")
            cursor.fetchall()
            cursor.execute(f"ANALYZE TABLE `{result_model._meta.db_table}`")
            cursor.fetchall()


def copy_results(cursor, run_model, result_model, template) -> None:
    table, runs = result_model._meta.db_table, run_model._meta.db_table
    columns = [f.column for f in result_model._meta.concrete_fields if f.column != "id"]
    select = ", ".join("r.id" if c == "run_id" else f"t.`{c}`" for c in columns)
    cursor.execute(
        f"INSERT INTO `{table}` ({', '.join(f'`{c}`' for c in columns)}) SELECT {select} "
        f"FROM `{runs}` r JOIN `{table}` t ON t.run_id = %s "
        f"LEFT JOIN `{table}` x ON x.run_id = r.id WHERE r.status = 'succeeded' AND x.id IS NULL",
        [template.pk.hex],
    )


# Measuring


class Timing(NamedTuple):
    wall_ms: float
    cpu_ms: float
    database_ms: float
    queries: int

    def __str__(self) -> str:
        return (
            f"{self.wall_ms:.1f} ms (CPU {self.cpu_ms:.1f}, database {self.database_ms:.1f}), "
            f"{self.queries} queries"
        )


def measure(kinds: dict, size: int, options) -> list[tuple]:
    from django.contrib.auth import get_user_model
    from django.test import Client
    from rest_framework.authtoken.models import Token

    token = Token.objects.get_or_create(user=kinds["owner"])[0]
    api = Client(HTTP_HOST=HOST, HTTP_AUTHORIZATION=f"Token {token}")
    admin = Client(HTTP_HOST=HOST)
    admin.force_login(get_user_model().objects.get(username="benchadmin"))
    rows = []
    for label, client, url in [
        ("GET /api/podcasts/", api, "/api/podcasts/"),
        ("GET /api/podcasts/ page 2", api, next_link(api, "/api/podcasts/")),
        ("GET /api/podcasts/?status=failed", api, "/api/podcasts/?status=failed"),
        ("GET /api/videos/", api, "/api/videos/"),
        ("admin podcast runs", admin, "/admin/podcast/podcastrun/"),
        ("admin podcast runs, failed", admin, "/admin/podcast/podcastrun/?status__exact=failed"),
    ]:
        timing = timed(client, url, options.repeat)
        rows.append((size, label, timing))
        print(f"  {label}: {timing}", flush=True)
    if options.explain:
        explain(kinds["owner"])
    return rows


def next_link(client, url: str) -> str:
    answer = client.get(url)
    assert answer.status_code == 200, answer.content[:300]
    return answer.json()["next"].split(HOST, 1)[1]


def timed(client, url: str, repeat: int) -> Timing:
    """Medians of `repeat` GETs after a warm-up: wall and CPU milliseconds of this process,
    database milliseconds (the queries' own times), and the number of queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    assert client.get(url).status_code == 200, url
    wall, cpu, database = [], [], []
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as queries:
            started, cpu_started = time.perf_counter(), time.process_time()
            answer = client.get(url)
            wall.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - cpu_started) * 1000)
        assert answer.status_code == 200, (url, answer.status_code)
        database.append(sum(float(query["time"]) for query in queries.captured_queries) * 1000)
    median = statistics.median
    return Timing(median(wall), median(cpu), median(database), len(queries))


def explain(owner) -> None:
    from django.db import connection

    from podcast.models import PodcastRun

    page = PodcastRun.objects.filter(owner=owner).select_related("result")
    sql, params = page.order_by("-created_at", "-id")[:21].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        for row in cursor.fetchall():
            print("   ", row)


def report(rows: list[tuple], options) -> None:
    print(f"\nMedians of {options.repeat} requests (Django test client, in process), ms:")
    print("| runs of the user | request | wall | CPU | database | queries | target |")
    print("|---|---|---|---|---|---|---|")
    for size, label, t in rows:
        if label.startswith("admin"):
            met = t.wall_ms <= ADMIN_TARGET_MS and t.queries <= ADMIN_MAX_QUERIES
            target = f"<= {ADMIN_TARGET_MS} ms, <= {ADMIN_MAX_QUERIES} queries"
        else:
            met, target = t.wall_ms <= API_TARGET_MS, f"<= {API_TARGET_MS} ms"
        print(
            f"| {size:,} | {label} | {t.wall_ms:.1f} | {t.cpu_ms:.1f} | {t.database_ms:.1f} "
            f"| {t.queries} | {target}: {'met' if met else 'MISSED'} |"
        )


if __name__ == "__main__":
    main()
