"""Download throughput and resume cost: `jarvis pull` against `curl -o`, from a real nginx.

Run by hand (never by pytest):
    .venv/bin/python bench/download.py [--size-mib 1024] [--reps 3] [--connections 4]

A GGUF file of `--size-mib` MiB (a valid header, then deterministic pseudo-random bytes) is
served on loopback by nginx (Debian package; Range-capable, sendfile on) started in the
foreground from a temporary config. Then:

  throughput  `--reps` rounds, alternating: `curl -s -o` (also timed with a `sha256sum` and a
              Python hashlib pass over the result, since jarvis verifies and curl does not)
              and `jarvis pull <url>` standalone (no server), which fetches with several
              ranged connections, hashes while downloading and installs the blob under its
              sha256. Medians are reported; jarvis's CLI start-up (`jarvis --help`) is timed
              apart and also shown subtracted. Goal: jarvis MB/s / curl MB/s >= 0.95.
  resume      `jarvis pull` is SIGKILLed at about half (judged from its `.partial.json`
              state sidecar) and run again to completion. The bytes nginx sent in both runs
              (`$body_bytes_sent` of its access log, the honest count) minus the file size is
              what had to be fetched twice. Goal: <= 1 % of the file. The same kill done to
              `curl -o`, resumed with `curl -C -`, is shown as the reference: whatever sat in
              the socket buffers at the kill is counted by nginx as sent, for any client.

Each downloaded file and store is deleted (and the disk synced) before the next run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.support.gguf_files import gguf_bytes  # noqa: E402

NGINX = "/usr/sbin/nginx"
JARVIS = ROOT / ".venv" / "bin" / "jarvis"
MIB = 1 << 20
BLOCK = 8 * MIB
GOAL_RATIO, GOAL_RETRANSFER_PCT = 0.95, 1.0

NGINX_CONF = """\
{user}worker_processes 2;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 256; }}
http {{
    log_format bench '$msec $request_method $status $body_bytes_sent "$http_range"';
    access_log {tmp}/access.log bench;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    server {{
        listen 127.0.0.1:{port};
        root {tmp}/www;
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_gguf(path: Path, size: int) -> str:
    """Write a valid GGUF header, then pseudo-random 8 MiB blocks up to `size`; return its sha256."""
    header = gguf_bytes(payload=0)
    rng, sha = random.Random(20240601), hashlib.sha256()
    with path.open("wb") as out:
        written = 0
        while written < size:
            block = header if written == 0 else rng.randbytes(min(BLOCK, size - written))
            out.write(block)
            sha.update(block)
            written += len(block)
    return sha.hexdigest()


class Nginx:
    """nginx in the foreground on a free loopback port, serving `<tmp>/www`; a context manager."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.port, self.log = tmp, free_port(), tmp / "access.log"
        user = "user root;\n" if os.geteuid() == 0 else ""
        (tmp / "nginx.conf").write_text(NGINX_CONF.format(user=user, tmp=tmp, port=self.port))

    def __enter__(self) -> Nginx:
        cmd = [
            NGINX,
            "-p",
            str(self.tmp),
            "-e",
            str(self.tmp / "error.log"),
            "-c",
            str(self.tmp / "nginx.conf"),
            "-g",
            "daemon off;",
        ]
        self.proc = subprocess.Popen(cmd, start_new_session=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.__exit__()
                    raise SystemExit(f"nginx did not start:\n{(self.tmp / 'error.log').read_text()}") from None
                time.sleep(0.05)

    def __exit__(self, *exc) -> None:
        self.proc.send_signal(signal.SIGQUIT)  # graceful: workers finish writing the log
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def mark(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def body_bytes(self, since: int) -> tuple[int, int]:
        """(body bytes sent, GET requests) logged after byte offset `since` of the access log."""
        with self.log.open("rb") as handle:
            handle.seek(since)
            lines = [line.split() for line in handle.read().decode().splitlines()]
        gets = [fields for fields in lines if fields[1] == "GET"]
        return sum(int(fields[3]) for fields in gets), len(gets)


def jarvis_env(tmp: Path, connections: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JARVIS_", "API_"))}
    env.update(
        JARVIS_DATA_DIR=str(tmp / "data"),
        JARVIS_MODELS_DIR=str(tmp / "store"),
        JARVIS_PORT=str(free_port()),
        JARVIS_ALLOW_INSECURE_URLS="true",
        JARVIS_DISK_RESERVE_MB="0",
        JARVIS_DOWNLOAD_CONNECTIONS=str(connections),
        JARVIS_LOG_LEVEL="WARNING",
    )
    return env


def timed(cmd: list, **kwargs) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    elapsed = time.perf_counter() - start
    if result.returncode:
        raise SystemExit(f"{cmd[0]} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return elapsed


def check_blob(store: Path, sha: str, size: int) -> None:
    """jarvis names the blob by the sha256 it computed: the expected name proves the hash."""
    blob = store / "blobs" / f"sha256-{sha}"
    if not blob.exists() or blob.stat().st_size != size:
        raise SystemExit(f"jarvis did not install {blob.name}: {sorted(p.name for p in (store / 'blobs').glob('*'))}")


def clean(*paths: Path) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    os.sync()  # no write-back of the previous run during the next one


def throughput(args, tmp: Path, url: str, sha: str, size: int) -> dict:
    """Medians over `--reps` alternating rounds, in seconds."""
    env, store, out = jarvis_env(tmp, args.connections), tmp / "store", tmp / "curl.out"
    times: dict[str, list[float]] = {k: [] for k in ("curl", "curl+sha256sum", "curl+hashlib", "jarvis", "startup")}
    for rep in range(args.reps):
        for tool in ("curl", "jarvis") if rep % 2 == 0 else ("jarvis", "curl"):
            if tool == "curl":
                curl = timed(["curl", "-s", "-f", "-o", str(out), url])
                times["curl"].append(curl)
                times["curl+sha256sum"].append(curl + timed(["sha256sum", str(out)]))
                start = time.perf_counter()
                with out.open("rb") as handle:
                    if hashlib.file_digest(handle, "sha256").hexdigest() != sha:
                        raise SystemExit("curl downloaded a different file")
                times["curl+hashlib"].append(curl + time.perf_counter() - start)
                clean(out)
            else:
                times["jarvis"].append(timed([str(JARVIS), "pull", url], env=env, cwd=tmp))
                check_blob(store, sha, size)
                clean(store, tmp / "data")
        times["startup"].append(timed([str(JARVIS), "--help"], env=env, cwd=tmp))
        print(f"  round {rep + 1}: curl {times['curl'][-1]:.2f}s  jarvis {times['jarvis'][-1]:.2f}s", flush=True)
    return {k: statistics.median(v) for k, v in times.items()}


def partial_done(store: Path) -> int:
    for state in (store / "blobs").glob("*.partial.json"):
        try:
            return sum(done for _start, _end, done in json.loads(state.read_text())["segments"])
        except (OSError, ValueError, KeyError):
            pass  # replaced while we read it
    return 0


def kill_at_half(cmd: list, progress, size: int, **popen) -> int:
    """Start `cmd`, SIGKILL its process group once `progress()` reaches half of `size`."""
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **popen)
    try:
        while (done := progress()) < size // 2:
            if proc.poll() is not None:
                raise SystemExit(f"{cmd[0]} ended before it could be killed (make the file bigger)")
            time.sleep(0.005)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return done


def resume(nginx: Nginx, size: int, first: list, again: list, progress, check, **popen) -> dict:
    """Kill -9 `first` at about half, run `again` to the end; nginx's log says how much was sent."""
    since = nginx.mark()
    killed_at = kill_at_half(first, progress, size, **popen)
    kept = progress()  # what the killed process had written down as done
    time.sleep(0.5)  # nginx logs the aborted requests once it sees their connections close
    sent_first, gets_first = nginx.body_bytes(since)
    seconds = timed(again, **popen)
    check()
    total, gets = nginx.body_bytes(since)
    return {
        "killed_at": killed_at,
        "kept": kept,
        "first": sent_first,
        "second": total - sent_first,
        "total": total,
        "gets": f"{gets_first} + {gets - gets_first}",
        "seconds": seconds,
    }


def resume_cases(args, tmp: Path, nginx: Nginx, url: str, sha: str, size: int) -> tuple[dict, dict]:
    """jarvis pull (its `.partial.json` says how far it got), then curl -C - as the reference."""
    env, store, out = jarvis_env(tmp, args.connections), tmp / "store", tmp / "curl.out"
    clean(store, tmp / "data")
    pull = [str(JARVIS), "pull", url]
    jarvis = resume(
        nginx, size, pull, pull, lambda: partial_done(store), lambda: check_blob(store, sha, size), env=env, cwd=tmp
    )
    clean(store, tmp / "data")

    def check_curl() -> None:
        with out.open("rb") as handle:
            if hashlib.file_digest(handle, "sha256").hexdigest() != sha:
                raise SystemExit("curl -C - produced a different file")

    curl = resume(
        nginx,
        size,
        ["curl", "-s", "-f", "-o", str(out), url],
        ["curl", "-s", "-f", "-C", "-", "-o", str(out), url],
        lambda: out.stat().st_size if out.exists() else 0,
        check_curl,
    )
    clean(out)
    return jarvis, curl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="file size in MiB (default 1024)")
    parser.add_argument("--reps", type=int, default=3, help="throughput rounds; medians reported (default 3)")
    parser.add_argument("--connections", type=int, default=4, help="JARVIS_DOWNLOAD_CONNECTIONS (default 4)")
    args = parser.parse_args()
    if not os.path.exists(NGINX):
        raise SystemExit("nginx is missing: apt-get update && apt-get install -y nginx")
    if not JARVIS.exists():
        raise SystemExit(f"{JARVIS} is missing: install the project into .venv first")
    size = args.size_mib * MIB
    tmp = Path(tempfile.mkdtemp(prefix="jarvis-bench-download-"))
    free = shutil.disk_usage(tmp).free
    if free < 3 * size + 512 * MIB:
        raise SystemExit(
            f"{free / 1e9:.1f} GB free in {tmp.parent}; the bench needs {(3 * size + 512 * MIB) / 1e9:.1f} GB"
        )
    try:
        (tmp / "www").mkdir()
        print(f"writing a {args.size_mib} MiB GGUF to {tmp}/www ...", flush=True)
        sha = make_gguf(tmp / "www" / "model.gguf", size)
        os.sync()
        with Nginx(tmp) as nginx:
            url = f"http://127.0.0.1:{nginx.port}/model.gguf"
            timed(["curl", "-s", "-f", "-o", "/dev/null", url])  # warm nginx's page cache of the file
            print(f"throughput: {args.reps} rounds, {args.connections} connections, {url}", flush=True)
            t = throughput(args, tmp, url, sha, size)
            print("resume: kill -9 at about half, then again to the end (jarvis pull, then curl -C -)", flush=True)
            r, rc = resume_cases(args, tmp, nginx, url, sha, size)
        report(args, size, sha, t, r, rc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def report(args, size: int, sha: str, t: dict, r: dict, rc: dict) -> None:
    mbps = lambda seconds: size / seconds / 1e6  # noqa: E731
    verdict = lambda ok: "PASS" if ok else "FAIL"  # noqa: E731
    jarvis_net = t["jarvis"] - t["startup"]
    ratio, net_ratio = t["curl"] / t["jarvis"], t["curl"] / jarvis_net
    extra, extra_curl = r["total"] - size, rc["total"] - size
    pct, pct_curl = extra * 100 / size, extra_curl * 100 / size
    rows = [
        ("file", f"{size:,} bytes ({args.size_mib} MiB), sha256 {sha[:16]}…"),
        ("curl -o", f"{t['curl']:.2f} s  {mbps(t['curl']):7.1f} MB/s   (no verification)"),
        ("curl + sha256sum", f"{t['curl+sha256sum']:.2f} s  {mbps(t['curl+sha256sum']):7.1f} MB/s"),
        ("curl + hashlib", f"{t['curl+hashlib']:.2f} s  {mbps(t['curl+hashlib']):7.1f} MB/s"),
        (
            "jarvis pull (wall)",
            f"{t['jarvis']:.2f} s  {mbps(t['jarvis']):7.1f} MB/s   (sha256 + install, {args.connections} connections)",
        ),
        ("jarvis CLI start-up", f"{t['startup']:.2f} s   (`jarvis --help`)"),
        ("jarvis pull - start-up", f"{jarvis_net:.2f} s  {mbps(jarvis_net):7.1f} MB/s"),
        (
            "ratio jarvis/curl",
            f"{ratio:.3f} wall, {net_ratio:.3f} without start-up   goal >= {GOAL_RATIO}: "
            f"{verdict(ratio >= GOAL_RATIO)} wall, {verdict(net_ratio >= GOAL_RATIO)} without start-up",
        ),
        ("ratio jarvis/(curl+hashlib)", f"{t['curl+hashlib'] / t['jarvis']:.3f} wall"),
        (
            "resume: killed at",
            f"{r['killed_at']:,} bytes ({r['killed_at'] * 100 / size:.1f} %); state sidecar then said {r['kept']:,}",
        ),
        (
            "resume: nginx sent",
            f"{r['first']:,} + {r['second']:,} = {r['total']:,} bytes in {r['gets']} GETs; "
            f"second pull {r['seconds']:.2f} s",
        ),
        (
            "resume: lost at the kill",
            f"{r['first'] - r['kept']:,} bytes sent before the kill but not kept (socket buffers + unsaved state)",
        ),
        (
            "resume: re-transferred",
            f"{extra:,} bytes = {pct:.3f} % of the file   "
            f"goal <= {GOAL_RETRANSFER_PCT} %: {verdict(pct <= GOAL_RETRANSFER_PCT)}",
        ),
        (
            "reference: curl -C -",
            f"{extra_curl:,} bytes = {pct_curl:.3f} % re-transferred "
            f"(1 connection, killed at {rc['killed_at'] * 100 / size:.1f} %)",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    print(
        f"\nresults (throughput: medians of {args.reps} rounds)\n"
        + "\n".join(f"  {name:<{width}}  {value}" for name, value in rows)
    )


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up (nginx, temp dir) on kill too
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    try:
        main()
    except KeyboardInterrupt:
        raise SystemExit(130) from None
