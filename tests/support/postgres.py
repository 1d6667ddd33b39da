"""A throwaway PostgreSQL cluster for the test run: initdb in a temp dir, start on a free port,
stop with the run. Runs the server as the `postgres` user when the tests run as root."""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

_numbers = itertools.count()


def find_bindir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    if shutil.which("pg_ctl"):
        candidates.append(str(Path(shutil.which("pg_ctl")).parent))
    for candidate in candidates:
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PostgresCluster:
    bindir: Path
    root: Path
    port: int
    user: str | None  # the OS user the server runs as (None: as ourselves)

    def _run(self, *args: str) -> None:
        command = list(args)
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip() or done.stdout.strip()}")

    @classmethod
    def start(cls, bindir: Path) -> PostgresCluster:
        root = Path(tempfile.mkdtemp(prefix="jarvis-pg-"))
        user = "postgres" if os.geteuid() == 0 else None
        if user:
            pw = pwd.getpwnam(user)
            os.chown(root, pw.pw_uid, pw.pw_gid)
        cluster = cls(bindir, root, free_port(), user)
        data = root / "data"
        cluster._run(str(bindir / "initdb"), "-D", str(data), "-U", "jarvis", "--auth=trust", "-E", "UTF8")
        options = f"-p {cluster.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        cluster._run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start")
        return cluster

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://jarvis@127.0.0.1:{self.port}/{database}"

    def new_database(self, prefix: str) -> str:
        """A database of its own for one test: `prefix`, this process and a running number."""
        return self.create_database(f"{prefix}_{os.getpid()}_{next(_numbers)}")

    def create_database(self, name: str) -> str:
        self._run(str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "jarvis", name)
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
