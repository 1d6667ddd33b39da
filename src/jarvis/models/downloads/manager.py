"""The download manager: runs each job (job.py) in a task of its own, one transfer per file
across jobs and processes, and publishes progress on the event bus."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
from filelock import Timeout

from jarvis.config import Settings
from jarvis.errors import Conflict, InsufficientStorage, JarvisError, NotFound, UpstreamAuthError
from jarvis.events import EventBus
from jarvis.models.bundled import install_bundled
from jarvis.models.downloads.install import install, is_update
from jarvis.models.downloads.job import DownloadJob, new_job_id
from jarvis.models.fit import check_memory
from jarvis.models.pinning import proxies_configured
from jarvis.models.plan import Plan, RemoteFile
from jarvis.models.refs import parse_model_key
from jarvis.models.registries.url import check_public_url
from jarvis.models.resolver import Resolver
from jarvis.models.store import ModelStore, write_atomic
from jarvis.models.transfer import Transfer, TransferCancelled, TransferOptions

if TYPE_CHECKING:  # PostgreSQL only; `jarvis pull` runs without the database layer
    from jarvis.models.downloads.shared import SharedJobs

log = logging.getLogger(__name__)

TICK_SECONDS = 0.1  # at most ten progress events a second per job
PARTIAL_KEEP_DAYS = 7  # a paused pull resumes within this; after it, its partial file is removed at start


class DownloadManager:
    def __init__(self, store: ModelStore, settings: Settings, *, bus: EventBus) -> None:
        self.store = store
        self.settings = settings
        self.bus = bus
        # called with a model's name after a pull replaced its files (the engine drops the old copy)
        self.on_replaced: Callable[[str], Awaitable[None]] | None = None
        self.client = httpx.AsyncClient(
            follow_redirects=True,
            timeout=httpx.Timeout(30.0, connect=10.0),
            # a transport given to httpx turns its proxy settings off: with proxies, httpx's own
            transport=None if proxies_configured() else _FirstUseTransport(),
        )
        self.resolver = Resolver(settings, self.client)
        self.jobs: dict[str, DownloadJob] = {}  # by job id
        self._slots = asyncio.Semaphore(settings.max_concurrent_downloads)
        self._files: dict[str, asyncio.Future] = {}  # one transfer per file, by digest or URL
        self._closing = False
        self.shared: SharedJobs | None = None  # with replicas on PostgreSQL: the jobs they all see
        self.options = TransferOptions(
            connections=settings.download_connections,
            stall_timeout=settings.download_stall_seconds,
            backoff_base=settings.download_backoff_seconds,
        )

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Resume the jobs that were running when the service last stopped."""
        for path in sorted(self.store.jobs.glob("*.json")):
            try:
                saved = json.loads(path.read_text())
                job = DownloadJob(
                    id=saved["id"],
                    model_key=saved["model_key"],
                    quantization=saved.get("quantization"),
                    plan=Plan.from_dict(saved["plan"]),
                    created_at=saved["created_at"],
                )
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("dropping unreadable download job %s: %s", path.name, exc)
                path.unlink(missing_ok=True)
                continue
            if job.id in self.jobs:
                continue
            if self.shared is not None:  # replicas on PostgreSQL: the job may be another's now
                verdict = await self.shared.saved_job(job.id)
                if verdict == "drop":
                    path.unlink(missing_ok=True)
                    continue
                if verdict == "skip":
                    continue
            log.info("resuming the download of %s", job.name)
            self._schedule(job)
        await asyncio.to_thread(self._sweep_partials)

    def _sweep_partials(self) -> None:
        """Remove partial downloads no job resumes that were last written PARTIAL_KEEP_DAYS ago
        or more: paused pulls nobody came back for, and leftovers of a crash (a pause within
        that time still resumes)."""
        wanted = {self._partial_path(remote) for job in self.jobs.values() for remote in job.plan.files}
        cutoff = time.time() - PARTIAL_KEEP_DAYS * 86400
        for path in self.store.blobs.glob("*.partial*"):
            partial = path.with_name(path.name.split(".partial", 1)[0] + ".partial")
            if partial in wanted:
                continue
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    log.info("removed an abandoned partial download: %s", path.name)
            except OSError:  # gone meanwhile, or not ours to remove: it is only a clean-up
                continue

    async def close(self) -> None:
        """Stop transfers without discarding them: they resume at the next start."""
        self._closing = True
        for job in self.jobs.values():
            for transfer in job.transfers:
                transfer.cancel.set()
                transfer.abort()
        tasks = [job.task for job in self.jobs.values() if job.task]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.client.aclose()

    # --- requests --------------------------------------------------------------------------

    async def submit(self, model_key: str, quantization: str | None = None) -> DownloadJob:
        """Start (or join) the download of a model. Raises InvalidInput, ModelNotFound,
        UpstreamAuthError, UpstreamError, ModelTooLarge, InsufficientStorage."""
        ref = parse_model_key(model_key, quantization)
        if ref.source == "bundled":
            manifest = await asyncio.to_thread(install_bundled, self.store, ref.key)
            return self._finished_job(model_key, Plan(name=manifest.name, model_key=model_key, source="bundled"))
        plan = await self.resolver.plan(ref)
        for job in self.jobs.values():
            if job.name == plan.name and job.active:
                return job  # asked twice: one job, one transfer
        installed = self.store.get(plan.name)
        if installed and not is_update(installed, plan):
            return self._finished_job(model_key, plan)
        await check_memory(plan, self.settings)  # a model this machine cannot hold is refused before any byte
        self._check_disk(plan)
        job = DownloadJob(id=new_job_id(plan.name), model_key=model_key, quantization=quantization, plan=plan)
        self.adopt(job)
        return job

    def adopt(self, job: DownloadJob) -> None:
        """Run a new job, or one taken over from a replica that stopped (shared.py): saved
        under `models/jobs/` first, so that it resumes at the next start."""
        job.status = "queued"  # its bytes so far stay: progress never goes backwards
        write_atomic(
            self.store.jobs / f"{job.id}.json",
            json.dumps(
                {
                    "id": job.id,
                    "model_key": job.model_key,
                    "quantization": job.quantization,
                    "plan": job.plan.to_dict(),
                    "created_at": job.created_at,
                }
            ).encode(),
        )
        self._schedule(job)

    async def variants(self, model_key: str) -> list[dict]:
        ref = parse_model_key(model_key)
        if ref.source == "bundled":
            manifest = self.store.get(ref.key)
            return [
                {
                    "quantization": manifest.quantization if manifest else "Q4_K_M",
                    "file": manifest.file if manifest else None,
                    "size": manifest.size if manifest else None,
                    "sha256": manifest.digest.removeprefix("sha256-") if manifest else None,
                    "url": None,
                    "recommended": True,
                }
            ]
        return await self.resolver.variants(ref)

    def find(self, model_key: str) -> DownloadJob | None:
        """The newest job for a model key, installed name or job id."""
        matches = [j for j in self.all_jobs() if model_key in (j.model_key, j.name, j.id)]
        active = [j for j in matches if j.active]
        found = active or matches
        return found[-1] if found else None

    def active_for(self, name: str) -> DownloadJob | None:
        return next((j for j in self.all_jobs() if j.active and name in (j.name, j.model_key)), None)

    def all_jobs(self) -> list[DownloadJob]:
        """This replica's jobs, then those the other replicas on a shared PostgreSQL run."""
        return list(self.jobs.values()) + (self.shared.jobs() if self.shared is not None else [])

    async def cancel(self, model_key: str, *, keep_partial: bool = False) -> DownloadJob:
        """Stop a running download at once. Its partial data is removed, unless `keep_partial`
        (a pause: pulling the same model again resumes it). Raises NotFound, Conflict."""
        job = self.find(model_key)
        if job is None or not job.active:
            raise NotFound(f"no download of {model_key!r} is running")
        if job.status == "verifying":
            # Every byte is in and the manifest is being written in a thread that cannot be
            # stopped: cancelling now would report `cancelled` for a model that gets installed.
            raise Conflict(f"{job.name} is being installed; delete it once it is")
        if job.id not in self.jobs and self.shared is not None:  # another replica runs it
            return await self.shared.stop(job, keep_partial=keep_partial)
        job.keep_partial = keep_partial
        job.cancel.set()
        for transfer in job.transfers:
            transfer.abort()
        if job.task:
            if not job.transfers:  # still queued (or between files): nothing to interrupt but the task
                job.task.cancel()
            await asyncio.gather(job.task, return_exceptions=True)
        return job

    def snapshots(self) -> list[dict]:
        return [job.snapshot() for job in self.all_jobs()]

    # --- running jobs ------------------------------------------------------------------------

    def forget(self, name: str) -> None:
        """Drop the finished jobs of a model (deleted, or asked for again): a model's state is
        its newest job, and a client that follows the model by name, or connects late and is
        given every job's state, must never take an old job's `completed` (or error) for the
        current one's."""
        for old in [job for job in self.jobs.values() if job.name == name and not job.active]:
            del self.jobs[old.id]
        if self.shared is not None:
            self.shared.forget(name)

    def _finished_job(self, model_key: str, plan: Plan) -> DownloadJob:
        job = DownloadJob(
            id=new_job_id(plan.name), model_key=model_key, quantization=plan.quantization, plan=plan, status="completed"
        )
        self.forget(plan.name)
        self.jobs[job.id] = job
        self.bus.publish("download.progress", job.snapshot())
        return job

    def _schedule(self, job: DownloadJob) -> None:
        self.forget(job.name)
        self.jobs[job.id] = job
        self.bus.publish("download.progress", job.snapshot())
        job.task = asyncio.create_task(self._run(job), name=f"download {job.name}")

    def _check_disk(self, plan: Plan) -> None:
        needed = 0
        for remote in plan.files:
            if remote.digest and self.store.blob_path(remote.digest).exists():
                continue
            needed += max(0, (remote.size or 0) - _partial_bytes(self._partial_path(remote)))
        reserved = sum(max(0, (j.total_bytes or 0) - j.reported_bytes) for j in self.jobs.values() if j.active)
        free = shutil.disk_usage(self.store.blobs).free
        margin = self.settings.disk_reserve_bytes
        if needed + reserved + margin > free:
            raise InsufficientStorage(
                f"{plan.name} needs {needed / 1e9:.2f} GB; {free / 1e9:.2f} GB are free, "
                f"{reserved / 1e9:.2f} GB of it reserved by running downloads and {margin / 1e9:.2f} GB kept spare",
                details={"needed_bytes": needed, "free_bytes": free, "reserved_bytes": reserved},
            )

    def _partial_path(self, remote: RemoteFile) -> Path:
        if remote.digest:
            return self.store.blobs / f"{self.store.blob_path(remote.digest).name}.partial"
        return self.store.blobs / f"url-{hashlib.sha256(remote.url.encode()).hexdigest()[:32]}.partial"

    async def _run(self, job: DownloadJob) -> None:
        ticker = asyncio.create_task(self._tick(job))
        keep_job_file = False
        try:
            async with self._slots:
                job.status = "downloading"
                digests = [await self._fetch(job, remote) for remote in job.plan.files]
                job.status = "verifying"
                self._publish(job)
                replacing = self.store.get(job.plan.name) is not None
                await asyncio.to_thread(install, self.store, job.plan, digests)
                if replacing and self.on_replaced is not None:
                    await self.on_replaced(job.plan.name)
                job.status = "completed"
                job.reported_bytes = job.total_bytes or job.reported_bytes
        except (asyncio.CancelledError, TransferCancelled):
            if self._closing:  # shutting down: the job resumes at the next start
                keep_job_file = True
                raise
            job.status = "cancelled"
        except JarvisError as exc:
            job.status, job.error, job.error_code = "error", exc.message, exc.code
        except Exception as exc:  # a bug must end this job, not the manager
            log.exception("download of %s failed", job.name)
            job.status, job.error, job.error_code = "error", f"{type(exc).__name__}: {exc}", "internal_error"
        finally:
            ticker.cancel()
            if not keep_job_file:
                (self.store.jobs / f"{job.id}.json").unlink(missing_ok=True)
                self._publish(job)
                if job.status == "error":
                    self.bus.publish("download.error", {"model": job.model_key, "name": job.name, "error": job.error})

    async def _fetch(self, job: DownloadJob, remote: RemoteFile) -> str:
        """Fetch one file into the store; returns its digest (`sha256-<hex>`).

        A file another job is already fetching is waited for, not fetched twice.
        """
        key = remote.digest or remote.url
        while True:
            if remote.digest and self._have(job, remote):
                return remote.digest
            shared = self._files.get(key)
            if shared is None:
                break
            try:
                digest = await asyncio.shield(shared)
            except TransferCancelled:
                if job.cancel.is_set():
                    raise
                continue  # the other job was cancelled; this one fetches the file itself
            job.done_bytes += self.store.blob_path(digest).stat().st_size
            return digest
        future = asyncio.get_running_loop().create_future()
        self._files[key] = future
        try:
            digest = await self._fetch_alone(job, remote)
            future.set_result(digest)
            return digest
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, Exception) else TransferCancelled())
            future.exception()  # marks it retrieved when nobody else waits
            raise
        finally:
            self._files.pop(key, None)

    def _have(self, job: DownloadJob, remote: RemoteFile) -> bool:
        """Whether the store holds the file already (counted as done for the job)."""
        blob = self.store.blob_path(remote.digest) if remote.digest else None
        if blob is None or not blob.exists():
            return False
        job.done_bytes += blob.stat().st_size
        return True

    async def _fetch_alone(self, job: DownloadJob, remote: RemoteFile) -> str:
        """Fetch a file while no other process does: workers or replicas sharing the store
        resume the same jobs at start and may be asked for the same model; the second waits,
        then finds the file there (or its partial, to resume)."""
        lock = self.store.lock(self._partial_path(remote).name)
        while True:
            try:
                await asyncio.to_thread(lock.acquire, timeout=0.5)
                break
            except Timeout:
                if job.cancel.is_set():
                    raise TransferCancelled() from None
        try:
            if remote.digest and self._have(job, remote):  # the other process finished it
                return remote.digest
            return await self._transfer(job, remote)
        finally:
            lock.release()

    async def _transfer(self, job: DownloadJob, remote: RemoteFile) -> str:
        partial = self._partial_path(remote)
        for attempt in range(2):
            transfer = Transfer(
                remote,
                partial,
                headers=self.resolver.auth_headers(remote, job.plan),
                options=self.options,
                cancel=job.cancel,
                url_guard=None if self.settings.allow_insecure_urls else check_public_url,
                # a registry's host is the operator's choice; a plain URL's host is the client's
                trusted_hosts=() if job.plan.source == "url" else (urlsplit(remote.url).hostname or "",),
            )
            job.transfers.append(transfer)
            try:
                hexdigest = await asyncio.to_thread(transfer.run)
                break
            except UpstreamAuthError:
                if attempt or remote.auth != "ollama":
                    raise
                await self.resolver.refresh_auth(job.plan)  # registry tokens expire
            except TransferCancelled:
                if not self._closing and not job.keep_partial:
                    transfer.discard()
                raise
            finally:
                job.transfers.remove(transfer)
                if remote.size is None:  # learned while fetching (a plain URL): the total must not go unknown again
                    remote.size = transfer.size
        digest = f"sha256-{hexdigest}"
        blob = self.store.blob_path(digest)
        os.replace(partial, blob)
        transfer.state_path.unlink(missing_ok=True)
        job.done_bytes += blob.stat().st_size
        return digest

    # --- progress ---------------------------------------------------------------------------------

    def _publish(self, job: DownloadJob) -> None:
        if job.active:
            job.measure()
        else:
            job.speed_bps = 0.0
        self.bus.publish("download.progress", job.snapshot())

    async def _tick(self, job: DownloadJob) -> None:
        last = None
        while True:
            await asyncio.sleep(TICK_SECONDS)
            job.measure()
            snapshot = job.snapshot()
            if snapshot != last:
                self.bus.publish("download.progress", snapshot)
                last = snapshot


def _partial_bytes(partial: Path) -> int:
    try:
        state = json.loads(partial.with_name(partial.name + ".json").read_text())
        return sum(done for _start, _end, done in state["segments"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


class _FirstUseTransport(httpx.AsyncBaseTransport):
    """httpx's own transport, made at the first request: making it loads the CA bundle, a
    twentieth of a second that `jarvis pull` of a plain URL (no registry to ask) never needs.
    Only without proxy settings: httpx honours them only when it makes the transport itself."""

    def __init__(self) -> None:
        self._transport: httpx.AsyncHTTPTransport | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._transport is None:
            self._transport = httpx.AsyncHTTPTransport()
        return await self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()
