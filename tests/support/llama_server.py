"""llama-cpp-python's own OpenAI-compatible server (`python -m llama_cpp.server`) on loopback:
a real peer nobody here wrote, for testing the `openai` engine against."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.support.postgres import free_port


class LlamaCppServer:
    """A `python -m llama_cpp.server` child process serving one GGUF.

    `alias` is the model id the server lists on `/v1/models` (an HF-style id with a slash,
    as vLLM lists them); `api_key`, when given, is required as a Bearer token.
    """

    def __init__(self, model: Path, *, alias: str, api_key: str | None = None, n_ctx: int = 2048) -> None:
        self.model = model
        self.alias = alias
        self.api_key = api_key
        self.n_ctx = n_ctx
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        handle, log = tempfile.mkstemp(prefix="llama-server-", suffix=".log")
        os.close(handle)
        self._log = Path(log)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What `JARVIS_OPENAI_BASE_URL` is set to for this server."""
        return f"{self.url}/v1"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def start(self, *, timeout: float = 120.0) -> LlamaCppServer:
        """Start the server and wait until `/v1/models` answers. Raises RuntimeError."""
        command = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model),
            "--model_alias", self.alias,
            "--chat_format", "gemma",
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_ctx", str(self.n_ctx),
        ]  # fmt: skip
        if self.api_key:
            command += ["--api_key", self.api_key]
        with self._log.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/models", headers=self.headers, timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"llama_cpp.server did not answer within {timeout}s:\n{self.log_tail()}")
            time.sleep(0.2)

    def requests(self, path: str = "/v1/chat/completions", *, method: str = "POST") -> int:
        """How many requests for `path` the server has logged (its access log)."""
        return sum(f'"{method} {path} ' in line for line in self._log.read_text(errors="replace").splitlines())

    def kill(self) -> None:
        """SIGKILL: the server dies at once, with no goodbye to its clients."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.unlink(missing_ok=True)
