"""The podcast's reader for the lean submit (runs/submit.py): a plain `POST /api/podcasts/`.

It takes a body only when PodcastCreateSerializer would take it unchanged, and makes of it what
the serializer would (stripped texts, the default priority, the sources in the order given, each
once, with their titles as the run's record); anything else is handed to the DRF path, which names
the field. The profiles and the caller's sources are read in one SELECT.
"""

from __future__ import annotations

from functools import cache

from django.db import connection

from runs.models import Priority
from runs.submit import Caller, HandOver, NewRun

from .models import EpisodeProfile, Source, SpeakerProfile
from .serializers import PK_MAX, SOURCES_PER_RUN_MAX

NAME_MAX, BRIEFING_MAX = 200, 2000  # PodcastCreateSerializer's max_length


def read_new_podcast(data: dict, caller: Caller) -> NewRun:
    episode, speaker = data.get("episode_profile"), data.get("speaker_profile")
    priority = data.get("priority", Priority.NORMAL)
    if not (isinstance(episode, str) and isinstance(speaker, str)):
        raise HandOver("a profile is missing or not a slug")
    if not isinstance(priority, str) or priority not in Priority.values:
        raise HandOver("the priority")
    name = text(data.get("episode_name"), NAME_MAX, blank=False)
    briefing = text(data.get("briefing_suffix", ""), BRIEFING_MAX, blank=True)
    ids = source_ids(data.get("source_ids"))
    with connection.cursor() as cursor:
        cursor.execute(lookup_sql(len(ids)), [episode, speaker, caller.pk, *ids])
        rows = cursor.fetchall()
    titles = {pk: title for pk, title, _, _ in rows}
    if len(titles) != len(ids) or rows[0][2] is None or rows[0][3] is None:
        raise HandOver("a source or a profile does not exist")
    return NewRun(
        values={
            "episode_profile_id": rows[0][2],
            "speaker_profile_id": rows[0][3],
            "episode_name": name,
            "briefing_suffix": briefing,
            "priority": priority,
            "sources_snapshot": [{"id": pk, "title": titles[pk]} for pk in ids],
        },
        links={"sources": ids},
    )


def text(value, limit: int, *, blank: bool) -> str:
    """A StrictCharField's value: a string, stripped, within `limit`, empty only if `blank`."""
    if not isinstance(value, str):
        raise HandOver("not a string")
    value = value.strip()
    if len(value) > limit or not (value or blank):
        raise HandOver("too long, or blank")
    return value


def source_ids(value) -> list[int]:
    """OwnSourcesField's ids: 1 to SOURCES_PER_RUN_MAX ints or digit strings, once each."""
    if not isinstance(value, list) or not 0 < len(value) <= SOURCES_PER_RUN_MAX:
        raise HandOver("not a list of 1 to 50 ids")
    ids = []
    for item in value:
        if isinstance(item, str) and item.isascii() and item.isdigit() and len(item) < 20:
            item = int(item)
        if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= PK_MAX:
            raise HandOver("not an id")
        ids.append(item)
    return list(dict.fromkeys(ids))


@cache
def lookup_sql(count: int) -> str:
    """The caller's sources among `count` ids, each row with both profiles' ids (NULL if none)."""
    quote = connection.ops.quote_name
    source = Source._meta

    def profile_id(model) -> str:
        return (
            f"(SELECT {quote('id')} FROM {quote(model._meta.db_table)} WHERE {quote('slug')} = %s)"
        )

    marks = ", ".join(["%s"] * count)
    return (
        f"SELECT s.{quote('id')}, s.{quote('title')}, {profile_id(EpisodeProfile)}, "
        f"{profile_id(SpeakerProfile)} FROM {quote(source.db_table)} s "
        f"WHERE s.{quote(source.get_field('owner').column)} = %s AND s.{quote('id')} IN ({marks})"
    )
