"""The podcast's reader for the lean submit (runs/submit.py): a plain `POST /api/podcasts/`.

It takes a body only when PodcastCreateSerializer would take it unchanged, and makes of it what
the serializer would (stripped texts, the default priority, the sources in the order given, each
once, with their titles as the run's record); anything else is handed to the DRF path, which names
the field. The profiles and the caller's sources are read in the SELECT that reads the caller.
"""

from __future__ import annotations

from functools import cache
from typing import cast

from django.contrib.auth import get_user_model
from django.db import connection

from runs.models import Priority
from runs.submit import HandOver, Lookup, NewRun, plain_text

from .models import EpisodeProfile, Source, SpeakerProfile
from .serializers import PK_MAX, SOURCES_PER_RUN_MAX

NAME_MAX, BRIEFING_MAX = 200, 2000  # PodcastCreateSerializer's max_length


def read_new_podcast(data: dict) -> Lookup:
    episode, speaker = data.get("episode_profile"), data.get("speaker_profile")
    priority = data.get("priority", Priority.NORMAL)
    if not (isinstance(episode, str) and isinstance(speaker, str)):
        raise HandOver("a profile is missing or not a slug")
    if not isinstance(priority, str) or priority not in Priority.values:
        raise HandOver("the priority")
    name = plain_text(data.get("episode_name"), NAME_MAX, blank=False)
    briefing = plain_text(data.get("briefing_suffix", ""), BRIEFING_MAX, blank=True)
    ids = source_ids(data.get("source_ids"))

    def make(rows: list[tuple]) -> NewRun:
        """Rows: both profiles' ids (NULL if unknown), and one of the caller's sources each."""
        episode_id, speaker_id = rows[0][0], rows[0][1]
        titles = {pk: title for _, _, pk, title in rows if pk is not None}
        if episode_id is None or speaker_id is None or len(titles) != len(ids):
            raise HandOver("a profile or a source does not exist")
        return NewRun(
            values={
                "episode_profile_id": episode_id,
                "speaker_profile_id": speaker_id,
                "episode_name": name,
                "briefing_suffix": briefing,
                "priority": priority,
                "sources_snapshot": [{"id": pk, "title": titles[pk]} for pk in ids],
            },
            links={"sources": ids},
        )

    columns, joins = lookup_sql(len(ids))
    return Lookup(columns=columns, joins=joins, params=[episode, speaker, *ids], make=make)


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
def lookup_sql(count: int) -> tuple[str, str]:
    """Both profiles' ids by slug, and the caller's sources among `count` ids (LEFT JOIN: one
    row with NULLs when none is the caller's)."""
    quote = connection.ops.quote_name
    source = Source._meta

    def profile_id(model) -> str:
        return (
            f"(SELECT {quote('id')} FROM {quote(model._meta.db_table)} WHERE {quote('slug')} = %s)"
        )

    marks = ", ".join(["%s"] * count)
    source_id, owner = quote("id"), quote(source.get_field("owner").column)
    user_pk = quote(cast(str, get_user_model()._meta.pk.column))
    columns = (
        f"{profile_id(EpisodeProfile)}, {profile_id(SpeakerProfile)}, s.{source_id}, "
        f"s.{quote('title')}"
    )
    joins = (
        f"LEFT JOIN {quote(source.db_table)} s ON s.{owner} = u.{user_pk} "
        f"AND s.{source_id} IN ({marks})"
    )
    return columns, joins
