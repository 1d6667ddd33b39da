"""Download one file with ranged connections, resumable across restarts.

- transfer.py: `Transfer`, which fetches a file into a `.partial` file with worker threads,
  hashes it as it arrives and verifies it;
- scaling.py: how many connections to run (a few, more while the total keeps growing);
- segments.py: the file's segments and the state sidecar that makes it resumable;
- responses.py: what a response must look like to be written, and the body reader.
"""

from jarvis.models.transfer.responses import TransferCancelled
from jarvis.models.transfer.segments import STATE_PAGE, Segment
from jarvis.models.transfer.transfer import Transfer, TransferOptions

__all__ = ["STATE_PAGE", "Segment", "Transfer", "TransferCancelled", "TransferOptions"]
