"""create_app(settings): lifespan, routers, and one error handler per error class."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from jarvis import __version__
from jarvis.api.errors import install_error_handlers
from jarvis.api.limits import LimitsMiddleware
from jarvis.api.security import SecurityMiddleware
from jarvis.api.middleware import AccessLogMiddleware
from jarvis.api.routes import chat, chat_v1, health, models, ollama_compat, openai_compat, plugins, ws, events, logs, memory
from jarvis.config import Settings
from jarvis.services import Services


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("jarvis").setLevel(level)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The ASGI app. Nothing is opened until the lifespan starts."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        configure_logging(settings.log_level)
        app.state.services = await Services.start(settings)
        try:
            yield
        finally:
            await app.state.services.close()

    app = FastAPI(
        title="JARVIS Core",
        version=__version__,
        description="Local-first AI assistant backend: local GGUF models, chat over REST, SSE and WebSocket.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_middleware(LimitsMiddleware, settings=settings)
    app.add_middleware(SecurityMiddleware, settings=settings)
    if settings.cors_origins:  # added after: outside the key check, so preflights get their answer
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    app.add_middleware(AccessLogMiddleware)  # added after CORS: outermost, so preflights are logged too
    install_error_handlers(app)
    for module in (health, chat, chat_v1, models, plugins, openai_compat, ollama_compat, ws, logs, events, memory):
        app.include_router(module.router)
    return app
