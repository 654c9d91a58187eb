"""The seeds' minimal submit endpoint, the anchor `bench/api.py` measures the project against.

One Django view, no auth: read {"episode_name", "source_ids"} as JSON, insert one row with the ORM
(status "pending", the JSON body, a UUID), send one Celery task by name with the row id, answer
202 {"id": ...}. It is not part of the product; it exists only to be measured beside it.
"""
