"""Events between replicas over Redis pub/sub (`JARVIS_REDIS_URL`), as Open WebUI scales its
socket events. A Redis message may be far larger than any event, so nothing goes by reference.
A batch of events is one pipeline: one round trip."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from jarvis.events.bus import EventBus
from jarvis.events.relay import Relay

CHANNEL = "jarvis:events"


class RedisRelay(Relay):
    backend = "redis"

    def __init__(self, bus: EventBus, url: str, *, replica: str) -> None:
        super().__init__(bus, replica=replica)
        self.url = url
        self.client: aioredis.Redis | None = None
        self.pubsub: aioredis.client.PubSub | None = None

    async def _open(self) -> None:
        # No client-side retries: a lost connection is the supervisor's to see (health says so).
        # No socket timeout: the subscription is idle between events; pings find a hung server.
        self.client = aioredis.Redis.from_url(
            self.url,
            socket_connect_timeout=5,
            socket_timeout=None,
            retry=Retry(NoBackoff(), 0),
            client_name="jarvis-events",
        )
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        await self.pubsub.subscribe(CHANNEL)

    async def _shut(self) -> None:
        pubsub, client = self.pubsub, self.client
        self.pubsub = self.client = None
        if pubsub is not None:
            await pubsub.aclose()
        if client is not None:
            await client.aclose()

    async def _watch(self) -> None:
        assert self.pubsub is not None
        async for message in self.pubsub.listen():  # raises ConnectionError when the server goes
            if message.get("type") == "message":
                data = message["data"]
                self.heard(data.decode() if isinstance(data, bytes) else data)

    async def _ping(self) -> None:
        assert self.client is not None
        await self.client.ping()

    async def _send_batch(self, payloads: list[str]) -> None:
        assert self.client is not None
        async with self.client.pipeline(transaction=False) as pipe:
            for payload in payloads:
                pipe.publish(CHANNEL, payload)
            await pipe.execute()
