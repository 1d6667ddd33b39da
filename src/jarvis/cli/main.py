"""`jarvis serve | ps | list`."""

from __future__ import annotations

from typing import Annotated, Optional

import httpx
import typer
from rich.console import Console
from rich.table import Table

from jarvis.config import Settings
from jarvis.models.store import ModelStore

app = typer.Typer(help="JARVIS Core: a local-first AI assistant backend.", no_args_is_help=True)
console = Console()


def _server_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    return f"http://{host}:{settings.port}"


def _get(settings: Settings, path: str) -> dict | None:
    """GET from a running server, or None when none answers."""
    try:
        response = httpx.get(_server_url(settings) + path, timeout=3.0)
    except httpx.TransportError:
        return None
    response.raise_for_status()
    return response.json()


@app.command()
def serve(
    host: Annotated[Optional[str], typer.Option(help="address to bind (default API_HOST or 127.0.0.1)")] = None,
    port: Annotated[Optional[int], typer.Option(help="port (default JARVIS_PORT / API_PORT or 5050)")] = None,
    reload: Annotated[bool, typer.Option(help="restart when the code changes (development)")] = False,
) -> None:
    """Start the server on the bundled default model."""
    import uvicorn

    settings = Settings()
    host = host or settings.host
    port = port or settings.port
    log_level = settings.log_level.lower()
    if reload:
        uvicorn.run("jarvis.app:create_app", factory=True, host=host, port=port, reload=True, log_level=log_level)
    else:
        from jarvis.app import create_app

        uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level)


@app.command(name="list")
def list_models() -> None:
    """Installed models."""
    settings = Settings()
    manifests = ModelStore(settings.models_dir).list()
    table = Table("NAME", "SIZE", "QUANT", "FAMILY", "PARAMS", "CONTEXT", "SOURCE")
    for m in manifests:
        table.add_row(
            m.name,
            f"{m.size / 1e6:.0f} MB",
            m.quantization or "-",
            m.family or "-",
            f"{(m.parameter_count or 0) / 1e6:.0f}M",
            str(m.context_length or "-"),
            m.source,
        )
    console.print(table)


@app.command()
def ps() -> None:
    """The model loaded in the running server."""
    settings = Settings()
    active = _get(settings, "/api/models/active")
    if active is None:
        console.print(f"no JARVIS server answers at {_server_url(settings)}")
        raise typer.Exit(1)
    table = Table("NAME", "ENGINE", "STATE", "CONTEXT", "LOAD TIME")
    model = active.get("model") or {}
    load = active.get("load_seconds")
    table.add_row(
        model.get("name", "-"),
        active["engine"],
        active["state"],
        str(active.get("context_length") or "-"),
        f"{load:.2f}s" if load is not None else "-",
    )
    console.print(table)


if __name__ == "__main__":
    app()
