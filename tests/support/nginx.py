"""Debian's nginx running deploy/nginx.conf on loopback: the same file, with its listen
address, its upstream servers and its paths (pid, logs, temp files) moved to a temp dir."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.postgres import free_port

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "deploy" / "nginx.conf"


def find_nginx() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def loopback_config(root: Path, *, port: int, upstreams: list[int]) -> str:
    """deploy/nginx.conf with `listen 80` on 127.0.0.1:`port` and the upstream servers on
    loopback `upstreams` (in order), everything it writes under `root`."""
    text = CONFIG.read_text()
    servers = re.findall(r"^(\s*)server (jarvis-[a-z]+:\d+)", text, flags=re.M)
    assert len(servers) == len(upstreams), f"deploy/nginx.conf names {len(servers)} replicas"
    for (_, address), upstream in zip(servers, upstreams, strict=True):
        text = text.replace(f"server {address}", f"server 127.0.0.1:{upstream}", 1)
    assert "listen 80;" in text
    text = text.replace("listen 80;", f"listen 127.0.0.1:{port};", 1)
    paths = "\n".join(
        f"    {name}_temp_path {root / name};" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    text = text.replace("http {", f"http {{\n    access_log {root / 'access.log'};\n{paths}\n", 1)
    return f"pid {root / 'nginx.pid'};\nerror_log {root / 'error.log'} info;\n{text}"


@dataclass
class Nginx:
    root: Path
    process: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @classmethod
    def start(cls, root: Path, upstreams: list[int]) -> Nginx:
        root.mkdir(parents=True, exist_ok=True)
        port = free_port()
        config = root / "nginx.conf"
        config.write_text(loopback_config(root, port=port, upstreams=upstreams))
        binary = find_nginx() or "nginx"
        checked = subprocess.run([binary, "-t", "-p", str(root), "-c", str(config)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr
        process = subprocess.Popen(
            [binary, "-p", str(root), "-c", str(config), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=(root / "stderr.log").open("wb"), start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, (root / "error.log").read_text()
                time.sleep(0.05)
        return cls(root, process, port)

    def stop(self) -> None:
        """SIGTERM (fast shutdown: open streams are cut) to nginx's process group, then SIGKILL."""
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        except ProcessLookupError:
            pass
