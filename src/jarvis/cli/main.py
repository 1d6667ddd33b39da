"""`jarvis serve | list | ps | pull | rm | run`: thin commands over the same services the server runs.

Each command imports what it needs when it runs: the client-side commands (`pull`, `run`
through a server, `--help`) start in a fraction of a second, without the web framework, the
database layer, llama.cpp or numpy (tests/cli/test_startup.py checks which modules load).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from jarvis.cli.pull import pull, rm
from jarvis.cli.run import run

if TYPE_CHECKING:
    from jarvis.config import Settings

app = typer.Typer(help="JARVIS Core: a local-first AI assistant backend.", no_args_is_help=True)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to bind (default API_HOST or 127.0.0.1)")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="port (default JARVIS_PORT / API_PORT or 5050)")
    ] = None,
    reload: Annotated[bool, typer.Option(help="restart when the code changes (development)")] = False,
) -> None:
    """Start the server on the bundled default model."""
    import uvicorn

    from jarvis.api.security import check_bind
    from jarvis.config import Settings

    settings = Settings()
    host = host or settings.host
    port = port or settings.port
    check_bind(settings, host)
    _check_memory(settings)
    settings.host, settings.port = host, port  # what the app and its checks should know
    log_level = settings.log_level.lower()
    if reload:
        # The reloader imports the app afresh in a child process, which reads the same settings.
        source = str(Path(__file__).resolve().parents[1])
        uvicorn.run(
            "jarvis.app:create_app",
            factory=True,
            host=host,
            port=port,
            reload=True,
            reload_dirs=[source],
            log_level=log_level,
        )
    else:
        from jarvis.app import create_app

        uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level)


def _check_memory(settings: Settings) -> None:
    """Exit with the reason when the slots and context asked for cannot fit in memory."""
    from jarvis.cli.common import console
    from jarvis.errors import JarvisError
    from jarvis.services import check_memory_settings

    try:
        check_memory_settings(settings)
    except JarvisError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None


@app.command(name="list")
def list_models() -> None:
    """Installed models."""
    from rich.table import Table

    from jarvis.cli.common import console
    from jarvis.config import Settings
    from jarvis.models.bundled import ensure_bundled
    from jarvis.models.store import ModelStore

    settings = Settings()
    store = ModelStore(settings.models_dir)
    ensure_bundled(store)  # the bundled models count as installed before the first `serve`
    table = Table("NAME", "SIZE", "QUANT", "FAMILY", "PARAMS", "CONTEXT", "SOURCE")
    for m in store.list():
        table.add_row(
            m.name,
            f"{m.size / 1e6:.0f} MB",
            m.quantization or "-",
            m.family or "-",
            f"{m.parameter_count / 1e6:.0f}M" if m.parameter_count else "-",
            str(m.context_length or "-"),
            m.source,
        )
    console.print(table)


@app.command()
def ps() -> None:
    """The model loaded in the running server (found through API_HOST and JARVIS_PORT / API_PORT)."""
    from rich.table import Table

    from jarvis.cli.common import console, get_json
    from jarvis.config import Settings

    settings = Settings()
    active = get_json(settings, "/api/models/active")
    table = Table("NAME", "ENGINE", "STATE", "CONTEXT", "LOAD TIME")
    model = active.get("model") or {}
    load = active.get("load_seconds")
    table.add_row(
        model.get("name", "-"),
        active.get("engine", "-"),
        active.get("state", "-"),
        str(active.get("context_length") or "-"),
        f"{load:.2f}s" if load is not None else "-",
    )
    console.print(table)


app.command()(pull)
app.command()(rm)
app.command()(run)

if __name__ == "__main__":
    app()
