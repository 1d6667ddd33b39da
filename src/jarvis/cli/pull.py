"""`jarvis pull` and `jarvis rm`: through the running server when one answers, else standalone
with the same download manager and store the server uses."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

import typer

from jarvis.cli.common import (
    NO_TLS_VERIFY,
    auth_headers,
    console,
    error_message,
    fail,
    get_json,
    server_answers,
    stream_client,
)
from jarvis.errors import JarvisError

if TYPE_CHECKING:  # imported where used: `jarvis --help` needs none of it (cli/main.py)
    from jarvis.config import Settings

TERMINAL = ("completed", "cancelled", "error")


def pull(
    model: Annotated[
        str | None,
        typer.Argument(
            help="a shortcut (qwen2.5-1.5b, mistral…), hf.co/ns/repo[:QUANT], name:tag, or an https URL; "
            "none: list the shortcuts"
        ),
    ] = None,
    quantization: Annotated[str | None, typer.Option("--quantization", "-q", help="e.g. Q4_K_M")] = None,
) -> None:
    """Download a model, with progress. Ctrl-C stops; pulling again resumes where it stopped.
    Without a model, list the catalog's shortcuts with their size and the memory they need."""
    import asyncio

    from jarvis.config import Settings

    settings = Settings()
    remote = server_answers(settings)
    if model is None:
        _list_shortcuts(settings, remote)
        return
    if remote:
        run = _pull_remote(settings, model, quantization)
    else:
        run = _pull_local(settings, model, quantization)
    try:
        final = asyncio.run(run)
    except KeyboardInterrupt:
        console.print("[yellow]stopped[/]; run the same command again to resume")
        raise typer.Exit(130) from None
    if final["status"] == "error":
        fail(final.get("error") or "the download failed")
    if final["status"] == "cancelled":
        fail("the download was cancelled")
    console.print(f"[green]installed[/] {final['name']}")


def rm(model: Annotated[str, typer.Argument(help="an installed model's name or the key it was pulled with")]) -> None:
    """Delete an installed model (its files go when no other model uses them)."""
    import httpx

    from jarvis.config import Settings

    settings = Settings()
    if server_answers(settings):
        response = httpx.request(
            "DELETE",
            settings.server_url + "/api/models/delete",
            json={"model_key": model},
            headers=auth_headers(settings),
            timeout=30,
            verify=NO_TLS_VERIFY,
        )
        if response.is_error:
            fail(error_message(response))
        name = response.json()["model"]
    else:
        from jarvis.models.installed import find_installed
        from jarvis.models.store import ModelStore

        store = ModelStore(settings.models_dir)
        try:
            name = find_installed(store, model).name
            store.delete(name)
        except JarvisError as exc:
            fail(exc.message)
    console.print(f"deleted {name}")


def _list_shortcuts(settings: Settings, remote: bool) -> None:
    """The catalog as the server sees it (installed, fits its memory), else as this machine does."""
    from rich.table import Column, Table

    if remote:
        shortcuts = [m for m in get_json(settings, "/api/models/available")["models"] if "memory" in m]
    else:
        from jarvis.models.catalog import load_catalog
        from jarvis.models.fit import fits

        shortcuts = [
            {
                "model_key": e.key,
                "source": e.source,
                "repo": e.repo,
                "description": e.description,
                **e.info(),
                "fits": fits(e, settings),
            }
            for e in load_catalog().values()
        ]
    table = Table(
        Column("NAME", no_wrap=True),
        "PARAMS",
        Column("SIZE", no_wrap=True),
        Column("RAM", no_wrap=True),
        "FITS",
        Column("FROM", overflow="fold"),
    )
    for m in shortcuts:
        table.add_row(
            m["model_key"] + (" [green]✓[/]" if m.get("status") == "installed" else ""),
            m.get("params") or "-",
            _gb(m.get("size")),
            _gb(m.get("memory")),
            {True: "yes", False: "[red]no[/]"}.get(m.get("fits"), "-"),
            m["repo"] or m["source"],
        )
    console.print(table)
    console.print(
        "Sizes are for Q4_K_M, RAM at 4096 tokens of context (FITS counts JARVIS_N_CTX); ✓ installed. "
        "`jarvis pull NAME[:QUANT]` downloads one.",
        soft_wrap=True,
    )


def _gb(size: int | None) -> str:
    return f"{size / 1e9:.2f} GB" if size else "-"


async def _show(updates: AsyncIterator[dict]) -> dict:
    """Render progress snapshots until the job ends; returns the last one."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TaskProgressColumn, TextColumn

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[speed]}"),
        TextColumn("{task.fields[eta]}"),
        TextColumn("[dim]{task.fields[status]}"),
    )
    last: dict = {}
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("", total=None, speed="", eta="", status="")
        async for snapshot in updates:
            last = snapshot
            eta = snapshot.get("eta_seconds")
            progress.update(
                task,
                description=snapshot["name"],
                total=snapshot.get("total_bytes"),
                completed=snapshot.get("downloaded_bytes") or 0,
                speed=f"{snapshot.get('speed_mbps') or 0:.1f} MB/s",
                eta=f"ETA {eta}s" if eta is not None and snapshot["status"] != "completed" else "",
                status=snapshot["status"],
            )
            if snapshot["status"] in TERMINAL:
                break
    return last


async def _pull_remote(settings: Settings, model: str, quantization: str | None) -> dict:
    from httpx_sse import aconnect_sse

    async with stream_client(settings) as http:
        response = await http.post("/api/models/download", json={"model_key": model, "quantization": quantization})
        if response.is_error:
            fail(error_message(response))
        job = response.json()
        if job["status"] in TERMINAL:
            return job

        async def updates() -> AsyncIterator[dict]:
            params = {"model": job["job_id"]}
            async with aconnect_sse(http, "GET", "/api/models/download/progress", params=params) as source:
                async for event in source.aiter_sse():
                    if event.event == "progress":
                        yield json.loads(event.data)

        cancel = lambda: http.post("/api/models/cancel", json={"model_key": job["job_id"], "keep_partial": True})  # noqa: E731
        return await _until_done(_show(updates()), cancel)


async def _pull_local(settings: Settings, model: str, quantization: str | None) -> dict:
    import asyncio

    from jarvis.events import EventBus
    from jarvis.models.downloads import DownloadManager
    from jarvis.models.store import ModelStore

    manager = DownloadManager(ModelStore(settings.models_dir), settings, bus=EventBus())
    try:
        try:
            job = await manager.submit(model, quantization)
        except JarvisError as exc:
            fail(exc.message)
        if job.status in TERMINAL:
            return job.snapshot()

        async def updates() -> AsyncIterator[dict]:
            while True:
                yield job.snapshot()
                if not job.active:
                    return
                if job.task is not None and not job.task.done():  # the bar moves every 0.1 s; the end shows at once
                    await asyncio.wait({job.task}, timeout=0.1)
                else:
                    await asyncio.sleep(0.1)

        return await _until_done(_show(updates()), lambda: manager.cancel(job.id, keep_partial=True))
    finally:
        await manager.close()


async def _until_done(watch: Awaitable[dict], pause: Callable[[], Awaitable]) -> dict:
    """Wait for the download; on Ctrl-C (the task is cancelled) pause it so it can resume."""
    import asyncio

    try:
        return await watch
    except asyncio.CancelledError:
        try:
            await asyncio.wait_for(pause(), 10)
        except Exception:  # the pause is best effort: the partial data is kept either way
            pass
        raise
