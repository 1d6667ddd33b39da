"""The download manager (manager.py): a queue of jobs (job.py), each fetching a model's files
with `Transfer` (models/transfer/), verifying them and installing a manifest (install.py).
Jobs outlive the request that started them (requests subscribe to progress and may leave),
are saved under `models/jobs/`, and resume by themselves when the service starts again.
With replicas on one PostgreSQL, shared.py makes every replica's jobs visible, stoppable and,
when their replica dies, taken over by another.
"""

from jarvis.models.downloads.job import ACTIVE, DownloadJob
from jarvis.models.downloads.manager import DownloadManager

__all__ = ["ACTIVE", "DownloadJob", "DownloadManager"]
