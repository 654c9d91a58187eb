"""A run's history (every transition, in the database) and its live events (Redis Streams, served
as Server-Sent Events), both fed by the lifecycle's signals (runs.signals)."""
