"""What the commands share: the console, the one error formatter, finding the server."""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console

if TYPE_CHECKING:  # each function imports what it uses: see cli/main.py on start-up
    import httpx

    from jarvis.config import Settings

console = Console()
errors = Console(stderr=True)
# The server is reached over plain HTTP (Settings.server_url): there is no TLS to verify, and an httpx
# client that may verify loads the CA bundle when it is made, a twentieth of a second each.
NO_TLS_VERIFY = False


def fail(message: str) -> NoReturn:
    """The CLI's one error formatter: a single line on stderr, exit status 1."""
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def auth_headers(settings: Settings) -> dict:
    """The key a server with `JARVIS_API_KEY` wants (the same environment configures both)."""
    return {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}


def get_json(settings: Settings, path: str) -> dict:
    """GET from the running server. Fails with one line when none answers or it answers an error."""
    import httpx

    url = settings.server_url
    try:
        response = httpx.get(url + path, timeout=5.0, headers=auth_headers(settings), verify=NO_TLS_VERIFY)
    except httpx.TransportError:
        fail(f"no JARVIS server answers at {url} (start one with `jarvis serve`; API_HOST / JARVIS_PORT say where)")
    if response.is_error:
        fail(f"{url}{path} answered {response.status_code}: {error_message(response)}")
    return response.json()


def server_answers(settings: Settings) -> bool:
    """Whether a JARVIS server is running where the settings say."""
    import httpx

    try:
        return httpx.get(settings.server_url + "/api/health", timeout=2.0, verify=NO_TLS_VERIFY).status_code == 200
    except httpx.TransportError:
        return False


def stream_client(settings: Settings) -> httpx.AsyncClient:
    """An async client of the running server for streamed answers and progress (no read
    timeout: a stream may be quiet for long), with the key it wants."""
    import httpx

    return httpx.AsyncClient(
        base_url=settings.server_url,
        headers=auth_headers(settings),
        timeout=httpx.Timeout(30.0, read=None),
        verify=NO_TLS_VERIFY,
    )


def error_message(response: httpx.Response) -> str:
    try:
        return response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or response.reason_phrase
