"""Download throughput and resume cost: `jarvis pull` and the server against `curl -o`, from a real nginx.

Run by hand (never by pytest):
    .venv/bin/python bench/download.py [--size-mib 1024] [--reps 3] [--connections 16]
                                       [--cases cli,server,capped,resume] [--cap-mbps 25] [--jarvis PATH]

A GGUF file of `--size-mib` MiB (a valid header, then deterministic pseudo-random bytes) is
served on loopback by nginx (Debian package; Range-capable, sendfile on) started in the
foreground from a temporary config, at a plain URL and as the model layer of an Ollama
registry (`/v2/library/big/manifests/latest` and its blob, static files). Then:

  cli         `--reps` rounds, alternating: `curl -s -o` (also timed with a `sha256sum` and a
              Python hashlib pass over the result, since jarvis verifies and curl does not)
              and `jarvis pull <url>` standalone (no server), which fetches with ranged
              connections, hashes while downloading and installs the blob under its sha256.
              Medians are reported; jarvis's CLI start-up (`jarvis --help`) is timed apart and
              also shown subtracted. Goal: jarvis MB/s / curl MB/s >= 0.95.
  server      `jarvis serve` (no model loaded) with the nginx registry as JARVIS_OLLAMA_REGISTRY;
              each round is `POST /api/models/download {"model_key": "big:latest"}` until the
              progress stream (SSE) says `completed`, against the same curl rounds; then
              `DELETE /api/models/delete` right away, which must succeed ("completed" means
              installed). Goal: >= 0.95 of curl.
  capped      the same file behind `limit_rate` (`--cap-mbps` MB/s per connection, as CDNs
              throttle single streams): `curl -o` once (the cap makes it deterministic), then
              `--reps` standalone `jarvis pull`s, which add connections while the total grows.
              Goal: >= 8x curl.
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
GOAL_RATIO, GOAL_RETRANSFER_PCT, GOAL_CAPPED = 0.95, 1.0, 8.0
REGISTRY_MODEL = "big:latest"  # library/big, tag latest, in the nginx "registry"

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
        location /capped/ {{
            alias {tmp}/www/;
            limit_rate {cap};
        }}
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

    def __init__(self, tmp: Path, *, cap: int) -> None:
        self.tmp, self.port, self.log = tmp, free_port(), tmp / "access.log"
        user = "user root;\n" if os.geteuid() == 0 else ""
        (tmp / "nginx.conf").write_text(NGINX_CONF.format(user=user, tmp=tmp, port=self.port, cap=cap))

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
                times["jarvis"].append(timed([args.jarvis, "pull", url], env=env, cwd=tmp))
                check_blob(store, sha, size)
                clean(store, tmp / "data")
        times["startup"].append(timed([args.jarvis, "--help"], env=env, cwd=tmp))
        print(f"  round {rep + 1}: curl {times['curl'][-1]:.2f}s  jarvis {times['jarvis'][-1]:.2f}s", flush=True)
    return {k: statistics.median(v) for k, v in times.items()}


def publish_registry(www: Path, model: Path, sha: str, size: int) -> None:
    """`library/big:latest` as static files nginx serves the way a registry does: the manifest
    at `/v2/library/big/manifests/latest` and the GGUF (a hard link) as its model layer's blob."""
    config = b'{"model_format":"gguf","model_family":"bench"}'
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": f"sha256:{hashlib.sha256(config).hexdigest()}",
            "size": len(config),
        },
        "layers": [{"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{sha}", "size": size}],
    }
    repo = www / "v2" / "library" / "big"
    (repo / "manifests").mkdir(parents=True)
    (repo / "blobs").mkdir()
    (repo / "manifests" / "latest").write_text(json.dumps(manifest))
    (repo / "blobs" / f"sha256:{hashlib.sha256(config).hexdigest()}").write_bytes(config)
    os.link(model, repo / "blobs" / f"sha256:{sha}")


class Server:
    """`jarvis serve` on a free port (no model loaded), its registry the bench's nginx."""

    def __init__(self, args, tmp: Path, registry: str) -> None:
        self.args, self.tmp = args, tmp
        self.env = jarvis_env(tmp, args.connections)
        self.port = int(self.env["JARVIS_PORT"])
        self.env.update(JARVIS_OLLAMA_REGISTRY=registry, JARVIS_LOAD_ON_START="false")
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        import httpx

        self.log = (self.tmp / "serve.log").open("wb")
        self.proc = subprocess.Popen(
            [self.args.jarvis, "serve", "--port", str(self.port)],
            env=self.env,
            cwd=self.tmp,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 600  # the first start writes the bundled models into the store
        while True:
            try:
                if httpx.get(self.url + "/api/health", timeout=5).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise SystemExit(f"jarvis serve did not start:\n{(self.tmp / 'serve.log').read_text()[-3000:]}")
            time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()

    def pull(self, model_key: str) -> float:
        """Seconds from the POST until the progress stream says `completed`; then the model is
        deleted at once, which must work (a 409 here is "completed" announced too early)."""
        import httpx

        with httpx.Client(base_url=self.url, timeout=httpx.Timeout(60, read=None)) as http:
            start = time.perf_counter()
            response = http.post("/api/models/download", json={"model_key": model_key})
            if response.status_code != 202:
                raise SystemExit(f"POST /api/models/download answered {response.status_code}: {response.text}")
            job = response.json()
            status = job["status"]
            if status != "completed":
                with http.stream("GET", "/api/models/download/progress", params={"model": job["job_id"]}) as events:
                    for line in events.iter_lines():
                        if line.startswith("data:"):
                            status = json.loads(line[5:])["status"]
                            if status in ("completed", "cancelled", "error"):
                                break
            elapsed = time.perf_counter() - start
            if status != "completed":
                raise SystemExit(f"the server's download ended {status}: {job}")
            deleted = http.request("DELETE", "/api/models/delete", json={"model_key": model_key})
            if deleted.status_code != 200:
                raise SystemExit(f"DELETE right after completed answered {deleted.status_code}: {deleted.text}")
        return elapsed


def server_path(args, tmp: Path, registry: str, sha: str, size: int, url: str) -> dict:
    """Medians of `--reps` rounds, alternating curl and the server's download (seconds)."""
    times: dict[str, list[float]] = {"curl": [], "server": []}
    out = tmp / "curl.out"
    with Server(args, tmp, registry) as server:
        for rep in range(args.reps):
            for tool in ("curl", "server") if rep % 2 == 0 else ("server", "curl"):
                if tool == "curl":
                    times["curl"].append(timed(["curl", "-s", "-f", "-o", str(out), url]))
                    clean(out)
                else:
                    times["server"].append(server.pull(REGISTRY_MODEL))
                    os.sync()
            print(f"  round {rep + 1}: curl {times['curl'][-1]:.2f}s  server {times['server'][-1]:.2f}s", flush=True)
    clean(tmp / "store", tmp / "data")
    return {k: statistics.median(v) for k, v in times.items()}


def capped(args, tmp: Path, url: str, sha: str, size: int) -> dict:
    """curl once (the cap sets its speed), then `--reps` standalone pulls (seconds; medians)."""
    env, store, out = jarvis_env(tmp, args.connections), tmp / "store", tmp / "curl.out"
    result = {"curl": timed(["curl", "-s", "-f", "-o", str(out), url])}
    clean(out)
    print(f"  curl {result['curl']:.2f}s", flush=True)
    runs = []
    for rep in range(args.reps):
        runs.append(timed([args.jarvis, "pull", url], env=env, cwd=tmp))
        check_blob(store, sha, size)
        clean(store, tmp / "data")
        print(f"  round {rep + 1}: jarvis {runs[-1]:.2f}s", flush=True)
    result["jarvis"] = statistics.median(runs)
    return result


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
    pull = [args.jarvis, "pull", url]
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
    parser.add_argument(
        "--connections",
        type=int,
        default=16,
        help="JARVIS_DOWNLOAD_CONNECTIONS, the most connections per file (default 16)",
    )
    parser.add_argument(
        "--cases", default="cli,server,capped,resume", help="which cases, comma-separated (default all)"
    )
    parser.add_argument(
        "--cap-mbps", type=float, default=25.0, help="per-connection cap of the capped case, MB/s (default 25)"
    )
    parser.add_argument(
        "--jarvis",
        default=str(JARVIS if JARVIS.exists() else Path(sys.executable).parent / "jarvis"),
        help="the jarvis command (default .venv/bin/jarvis, else the one beside this Python)",
    )
    args = parser.parse_args()
    cases = {case.strip() for case in args.cases.split(",") if case.strip()}
    if unknown := cases - {"cli", "server", "capped", "resume"}:
        raise SystemExit(f"unknown cases: {', '.join(sorted(unknown))}")
    if not os.path.exists(NGINX):
        raise SystemExit("nginx is missing: apt-get update && apt-get install -y nginx")
    if not Path(args.jarvis).exists():
        raise SystemExit(f"{args.jarvis} is missing: install the project into .venv first")
    size = args.size_mib * MIB
    tmp = Path(tempfile.mkdtemp(prefix="jarvis-bench-download-"))
    free = shutil.disk_usage(tmp).free
    if free < 3 * size + 1536 * MIB:
        raise SystemExit(
            f"{free / 1e9:.1f} GB free in {tmp.parent}; the bench needs {(3 * size + 1536 * MIB) / 1e9:.1f} GB"
        )
    results: dict = {}
    try:
        (tmp / "www").mkdir()
        print(f"writing a {args.size_mib} MiB GGUF to {tmp}/www ...", flush=True)
        sha = make_gguf(tmp / "www" / "model.gguf", size)
        publish_registry(tmp / "www", tmp / "www" / "model.gguf", sha, size)
        os.sync()
        with Nginx(tmp, cap=int(args.cap_mbps * 1e6)) as nginx:
            url = f"http://127.0.0.1:{nginx.port}/model.gguf"
            timed(["curl", "-s", "-f", "-o", "/dev/null", url])  # warm nginx's page cache of the file
            print(f"load before: {os.getloadavg()[0]:.2f} (1-minute average), {os.cpu_count()} CPUs", flush=True)
            if "cli" in cases:
                print(f"cli: {args.reps} rounds, up to {args.connections} connections, {url}", flush=True)
                results["cli"] = throughput(args, tmp, url, sha, size)
            if "server" in cases:
                print(
                    f"server: {args.reps} rounds, POST /api/models/download {REGISTRY_MODEL} until completed",
                    flush=True,
                )
                results["server"] = server_path(args, tmp, f"http://127.0.0.1:{nginx.port}", sha, size, url)
            if "capped" in cases:
                capped_url = f"http://127.0.0.1:{nginx.port}/capped/model.gguf"
                print(f"capped: {args.cap_mbps:g} MB/s per connection, {capped_url}", flush=True)
                results["capped"] = capped(args, tmp, capped_url, sha, size)
            if "resume" in cases:
                print("resume: kill -9 at about half, then again to the end (jarvis pull, then curl -C -)", flush=True)
                results["resume"] = resume_cases(args, tmp, nginx, url, sha, size)
            print(f"load after: {os.getloadavg()[0]:.2f} (1-minute average)", flush=True)
        report(args, size, sha, results)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def report(args, size: int, sha: str, results: dict) -> None:
    mbps = lambda seconds: size / seconds / 1e6  # noqa: E731
    verdict = lambda ok: "PASS" if ok else "FAIL"  # noqa: E731
    rows = [("file", f"{size:,} bytes ({args.size_mib} MiB), sha256 {sha[:16]}…")]
    if t := results.get("cli"):
        jarvis_net = t["jarvis"] - t["startup"]
        ratio, net_ratio = t["curl"] / t["jarvis"], t["curl"] / jarvis_net
        rows += [
            ("curl -o", f"{t['curl']:.2f} s  {mbps(t['curl']):7.1f} MB/s   (no verification)"),
            ("curl + sha256sum", f"{t['curl+sha256sum']:.2f} s  {mbps(t['curl+sha256sum']):7.1f} MB/s"),
            ("curl + hashlib", f"{t['curl+hashlib']:.2f} s  {mbps(t['curl+hashlib']):7.1f} MB/s"),
            (
                "jarvis pull (wall)",
                f"{t['jarvis']:.2f} s  {mbps(t['jarvis']):7.1f} MB/s   "
                f"(sha256 + install, up to {args.connections} connections)",
            ),
            ("jarvis CLI start-up", f"{t['startup']:.2f} s   (`jarvis --help`)"),
            ("jarvis pull - start-up", f"{jarvis_net:.2f} s  {mbps(jarvis_net):7.1f} MB/s"),
            (
                "ratio jarvis/curl",
                f"{ratio:.3f} wall, {net_ratio:.3f} without start-up   goal >= {GOAL_RATIO}: "
                f"{verdict(ratio >= GOAL_RATIO)} wall, {verdict(net_ratio >= GOAL_RATIO)} without start-up",
            ),
            ("ratio jarvis/(curl+hashlib)", f"{t['curl+hashlib'] / t['jarvis']:.3f} wall"),
        ]
    if t := results.get("server"):
        ratio = t["curl"] / t["server"]
        rows += [
            ("server: curl -o", f"{t['curl']:.2f} s  {mbps(t['curl']):7.1f} MB/s"),
            (
                "server: POST .. completed",
                f"{t['server']:.2f} s  {mbps(t['server']):7.1f} MB/s   (Ollama registry, "
                f"manifest + blob, sha256 + install; DELETE right after it succeeded)",
            ),
            ("ratio server/curl", f"{ratio:.3f}   goal >= {GOAL_RATIO}: {verdict(ratio >= GOAL_RATIO)}"),
        ]
    if t := results.get("capped"):
        ratio = t["curl"] / t["jarvis"]
        rows += [
            (
                "capped: curl -o",
                f"{t['curl']:.2f} s  {mbps(t['curl']):7.1f} MB/s   ({args.cap_mbps:g} MB/s per connection)",
            ),
            (
                "capped: jarvis pull",
                f"{t['jarvis']:.2f} s  {mbps(t['jarvis']):7.1f} MB/s   (up to {args.connections} connections)",
            ),
            ("ratio capped jarvis/curl", f"{ratio:.2f}x   goal >= {GOAL_CAPPED:g}x: {verdict(ratio >= GOAL_CAPPED)}"),
        ]
    if "resume" in results:
        r, rc = results["resume"]
        extra, extra_curl = r["total"] - size, rc["total"] - size
        pct, pct_curl = extra * 100 / size, extra_curl * 100 / size
        rows += [
            (
                "resume: killed at",
                f"{r['killed_at']:,} bytes ({r['killed_at'] * 100 / size:.1f} %); "
                f"state sidecar then said {r['kept']:,}",
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
        f"\nresults (medians of {args.reps} rounds)\n"
        + "\n".join(f"  {name:<{width}}  {value}" for name, value in rows)
    )


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up (nginx, temp dir) on kill too
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    try:
        main()
    except KeyboardInterrupt:
        raise SystemExit(130) from None
