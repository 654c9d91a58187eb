"""kombu's Redis transport, with one redis-py client per channel for its publishes.

kombu makes a new `redis.Redis` for each message it publishes, and redis-py builds some 170
response callbacks for each: about 0.06 ms of CPU a message, twice per submitted run (its task
and its task-sent event), and once for every event a worker sends. The client holds nothing but
the connection pool, which is the channel's anyway, and it is safe across threads: one serves
every publish of the channel. `install_transport` puts it under kombu's `redis` and `rediss`
names, so broker URLs, the worker's banner and Flower read as before.
"""

from __future__ import annotations

from kombu.transport import TRANSPORT_ALIASES, redis


class Channel(redis.Channel):
    _client_for_publishing = None

    def _create_client(self, asynchronous=False):
        if asynchronous:  # the consumer's own, made once per channel already
            return super()._create_client(asynchronous=True)
        client = self._client_for_publishing
        if client is None or client.connection_pool is not self.pool:  # a pool made again
            client = self._client_for_publishing = super()._create_client()
        return client


class Transport(redis.Transport):
    Channel = Channel


def install_transport() -> None:
    for scheme in ("redis", "rediss"):
        TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"
