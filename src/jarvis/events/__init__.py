"""Events: the in-process bus (bus.py) and the transports that carry it between replicas
(postgres.py: LISTEN/NOTIFY; redis.py: pub/sub when JARVIS_REDIS_URL is set).

On SQLite (one process) the bus stays in-process and no transport is started.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jarvis.events.bus import LOCAL_ONLY, Event, EventBus, Transport
from jarvis.events.relay import Relay

if TYPE_CHECKING:  # `jarvis pull` uses the bus without the database layer
    from sqlalchemy.engine import URL

__all__ = ["LOCAL_ONLY", "Event", "EventBus", "Relay", "Transport", "start_transport"]


async def start_transport(bus: EventBus, *, database_url: URL, redis_url: str | None) -> Relay | None:
    """Connect the bus to the other replicas: Redis when `redis_url` is set, else PostgreSQL's
    LISTEN/NOTIFY when the database is PostgreSQL, else nothing. The transport reconnects by
    itself; `bus.status()` says whether it is connected."""
    replica = bus.replica or "?"
    relay: Relay
    if redis_url:
        from jarvis.events.redis import RedisRelay

        relay = RedisRelay(bus, redis_url, replica=replica)
    elif database_url.get_backend_name() == "postgresql":
        from jarvis.events.postgres import PostgresRelay, asyncpg_dsn

        relay = PostgresRelay(bus, asyncpg_dsn(database_url), replica=replica)
    else:
        return None
    await relay.start()
    return relay
