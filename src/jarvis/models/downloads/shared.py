"""Download jobs shared by the replicas on one PostgreSQL (table `download_jobs`).

Every SYNC_SECONDS each replica
- writes the state of the jobs it runs (a row per job, `replica_id` its own) when it changed;
- stops those of its jobs another replica asked to stop (`stop`: `cancel` or `pause`);
- reads the other replicas' jobs, so its lists and late progress subscribers show them (live
  progress comes over the event bus, which carries `download.progress` between replicas);
- takes over the unfinished jobs of replicas no longer registered (replicas.py finds the dead
  ones within about a second): the claim is one conditional UPDATE, so one replica wins. The
  job runs again from its plan: on a shared model store it resumes from the partial file (and
  the store's file lock still keeps two processes off one file), on a store of its own it
  starts over.

On SQLite (one process) nothing of this runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.errors import Conflict, NotFound
from jarvis.events import EventBus
from jarvis.models.downloads.job import ACTIVE, DownloadJob
from jarvis.models.plan import Plan
from jarvis.storage.db import Database
from jarvis.storage.tables import DownloadJobRow, Replica, utcnow

if TYPE_CHECKING:
    from jarvis.models.downloads.manager import DownloadManager

log = logging.getLogger(__name__)

SYNC_SECONDS = 0.5  # how often a job's state is written, stop requests read and dead replicas' jobs claimed
STOP_WAIT_SECONDS = 10.0  # how long a cancel waits for the owning replica to stop the job
FINISHED_KEEP = timedelta(minutes=10)  # a finished job stays listed (and its row kept) this long
CLEAN_SECONDS = 60.0  # how often a replica deletes the rows of jobs finished longer ago than that


class SharedJobs:
    def __init__(self, db: Database, manager: DownloadManager, *, replica_id: str, bus: EventBus) -> None:
        self.db = db
        self.manager = manager
        self.replica_id = replica_id
        self.bus = bus
        self.remote: dict[str, DownloadJob] = {}  # the other replicas' jobs, by id
        self._written: dict[str, tuple] = {}  # what was last written of each local job
        self._tasks: list[asyncio.Task] = []
        self._background: set[asyncio.Task] = set()
        self._cleaned_at = 0.0

    async def start(self) -> None:
        await self.sync()
        self._tasks = [
            asyncio.create_task(self._loop(), name="shared-downloads"),
            asyncio.create_task(self._follow(), name="shared-downloads-events"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._background, return_exceptions=True)

    # --- what the manager asks --------------------------------------------------------------

    def jobs(self) -> list[DownloadJob]:
        """The other replicas' jobs this replica does not run itself, oldest first."""
        return [job for job_id, job in self.remote.items() if job_id not in self.manager.jobs]

    async def saved_job(self, job_id: str) -> str:
        """What to do at start with a job saved under `models/jobs/`: `resume` it (no replica
        has it, or this one does), `skip` it (another replica runs it, or one that died, whose
        jobs the next round claims), or `drop` it (it ended on another replica)."""
        async with self.db.session() as session:
            row = await session.get(DownloadJobRow, job_id)
        if row is None or row.replica_id == self.replica_id:
            return "resume"
        return "skip" if row.status in ACTIVE else "drop"

    async def stop(self, job: DownloadJob, *, keep_partial: bool) -> DownloadJob:
        """Ask the replica running `job` to cancel (or pause) it and wait until it has.
        Raises NotFound (it finished meanwhile), Conflict (being installed, or its replica did
        not answer within STOP_WAIT_SECONDS)."""
        if job.status == "verifying":
            raise Conflict(f"{job.name} is being installed; delete it once it is")
        async with self.db.session() as session:
            result = await session.execute(
                update(DownloadJobRow)
                .where(DownloadJobRow.id == job.id, DownloadJobRow.status.in_(ACTIVE))
                .values(stop="pause" if keep_partial else "cancel")
                .execution_options(synchronize_session=False)
            )
        if not getattr(result, "rowcount", 0):
            raise NotFound(f"no download of {job.model_key!r} is running")
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while time.monotonic() < deadline:
            async with self.db.session() as session:
                row = await session.get(DownloadJobRow, job.id)
            if row is None or row.status not in ACTIVE:
                if row is not None:
                    _apply(job, row)
                return job
            if row.status == "verifying":
                raise Conflict(f"{job.name} is being installed; delete it once it is")
            await asyncio.sleep(0.1)
        raise Conflict(f"the replica running the download of {job.name} did not stop it in time; try again")

    def forget(self, name: str) -> None:
        """Drop every replica's finished jobs of a model (deleted, or asked for again), as the
        manager drops its own: a late listener must not take an old `completed` for the current job."""
        for job_id in [i for i, job in self.remote.items() if job.name == name and not job.active]:
            del self.remote[job_id]
        self._in_background(self._forget(name))

    async def _forget(self, name: str) -> None:
        try:
            async with self.db.session() as session:
                await session.execute(
                    delete(DownloadJobRow).where(DownloadJobRow.name == name, DownloadJobRow.status.not_in(ACTIVE))
                )
        except Exception as exc:  # only a clean-up: the rows age out of the lists anyway
            log.warning("shared downloads: could not forget the finished jobs of %s (%s)", name, exc)

    def _in_background(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run `work` without waiting for it; `close` waits for what is still running."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- the loop -----------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(SYNC_SECONDS)
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away for a moment: the next round tries again
                log.warning("shared downloads: could not sync with the database (%s)", exc)

    async def sync(self) -> None:
        """One round: write, obey stop requests, read the others' jobs, claim orphans."""
        async with self.db.session() as session:
            await self._write(session)
        async with self.db.session() as session:
            await self._obey(session)
        async with self.db.session() as session:
            await self._read(session)
        await self._claim()

    async def _write(self, session: AsyncSession) -> None:
        for job in list(self.manager.jobs.values()):
            state = (job.status, job.reported_bytes, job.total_bytes, job.error)
            if self._written.get(job.id) == state:
                continue
            values = {
                "status": job.status,
                "done_bytes": job.reported_bytes,
                "total_bytes": job.total_bytes,
                "error": job.error,
                "error_code": job.error_code,
                "updated_at": utcnow(),
            }
            result = await session.execute(
                update(DownloadJobRow)
                .where(DownloadJobRow.id == job.id, DownloadJobRow.replica_id == self.replica_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if not getattr(result, "rowcount", 0):
                if await session.get(DownloadJobRow, job.id) is not None:
                    self._written[job.id] = state  # another replica runs it (both resumed it at start)
                    continue
                session.add(
                    DownloadJobRow(
                        id=job.id,
                        model_key=job.model_key,
                        name=job.name,
                        quantization=job.quantization,
                        plan=json.dumps(job.plan.to_dict()),
                        replica_id=self.replica_id,
                        created_at=datetime.fromisoformat(job.created_at),
                        **values,
                    )
                )
                await session.flush()
            self._written[job.id] = state
        for job_id in set(self._written) - set(self.manager.jobs):
            del self._written[job_id]

    async def _obey(self, session: AsyncSession) -> None:
        rows = (
            await session.execute(
                select(DownloadJobRow.id, DownloadJobRow.stop).where(
                    DownloadJobRow.replica_id == self.replica_id, DownloadJobRow.stop.is_not(None)
                )
            )
        ).all()
        for job_id, stop in rows:
            await session.execute(
                update(DownloadJobRow)
                .where(DownloadJobRow.id == job_id)
                .values(stop=None)
                .execution_options(synchronize_session=False)
            )
            job = self.manager.jobs.get(job_id)
            if job is None or not job.active or job.status == "verifying":
                continue
            log.info("stopping the download of %s: another replica asked to %s it", job.name, stop)
            self._in_background(self.manager.cancel(job_id, keep_partial=stop == "pause"))

    async def _read(self, session: AsyncSession) -> None:
        since = datetime.now(UTC) - FINISHED_KEEP
        rows = (
            await session.scalars(
                select(DownloadJobRow)
                .where(
                    DownloadJobRow.replica_id != self.replica_id,
                    DownloadJobRow.status.in_(ACTIVE) | (DownloadJobRow.updated_at >= since),
                )
                .order_by(DownloadJobRow.created_at)
            )
        ).all()
        seen = {}
        for row in rows:
            job = self.remote.get(row.id)
            if job is None:
                try:
                    job = _job(row)
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("ignoring the unreadable shared download job %s: %s", row.id, exc)
                    continue
            _apply(job, row)
            seen[row.id] = job
        self.remote = seen
        if time.monotonic() - self._cleaned_at >= CLEAN_SECONDS:
            self._cleaned_at = time.monotonic()
            await session.execute(
                delete(DownloadJobRow).where(DownloadJobRow.status.not_in(ACTIVE), DownloadJobRow.updated_at < since)
            )

    async def _claim(self) -> None:
        """Take over the unfinished jobs of replicas that are gone."""
        async with self.db.session() as session:
            orphans = (
                await session.scalars(
                    select(DownloadJobRow).where(
                        DownloadJobRow.status.in_(ACTIVE), DownloadJobRow.replica_id.not_in(select(Replica.id))
                    )
                )
            ).all()
        for row in orphans:
            stopped = row.stop is not None  # asked to stop before its replica died: stop it here
            async with self.db.session() as session:
                result = await session.execute(
                    update(DownloadJobRow)
                    .where(DownloadJobRow.id == row.id, DownloadJobRow.replica_id == row.replica_id)
                    .values(
                        replica_id=self.replica_id,
                        stop=None,
                        status="cancelled" if stopped else row.status,
                        updated_at=utcnow(),
                    )
                    .execution_options(synchronize_session=False)
                )
            if not getattr(result, "rowcount", 0) or stopped:
                continue  # another replica claimed it first
            try:  # the object this replica listed: whoever holds it (a waiting pull) sees it go on
                job = self.remote.pop(row.id, None) or _job(row)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("cannot take over the download job %s: %s", row.id, exc)
                continue
            if self.manager.active_for(job.name):  # this replica already fetches that model
                async with self.db.session() as session:
                    await session.execute(delete(DownloadJobRow).where(DownloadJobRow.id == row.id))
                continue
            log.warning("taking over the download of %s from replica %s, which stopped", job.name, row.replica_id)
            self.manager.adopt(job)

    async def _follow(self) -> None:
        """Keep the other replicas' jobs current between rounds from their progress events."""
        async with self.bus.subscribe() as queue:
            while True:
                event = await queue.get()
                if event.type != "download.progress" or event.origin in (None, self.replica_id):
                    continue
                job = self.remote.get(str(event.data.get("job_id")))
                if job is None:
                    continue
                job.status = str(event.data.get("status", job.status))
                job.reported_bytes = max(job.reported_bytes, int(event.data.get("downloaded_bytes") or 0))
                job.speed_bps = float(event.data.get("speed_mbps") or 0.0) * 1e6
                job.error = event.data.get("error", job.error)


def _job(row: DownloadJobRow) -> DownloadJob:
    job = DownloadJob(
        id=row.id,
        model_key=row.model_key,
        quantization=row.quantization,
        plan=Plan.from_dict(json.loads(row.plan)),
        created_at=row.created_at.isoformat(),
    )
    _apply(job, row)
    return job


def _apply(job: DownloadJob, row: DownloadJobRow) -> None:
    job.status = row.status
    job.reported_bytes = max(job.reported_bytes, row.done_bytes)
    job.error, job.error_code = row.error, row.error_code
    if job.status not in ACTIVE:
        job.speed_bps = 0.0
