"""Logs: every record of the service captured without blocking, redacted, stored with
retention limits, queryable, and streamed live as `log.record` events."""

from jarvis.logs.capture import ACCESS_LOGGER, CaptureHandler, LogWriter, request_id_var
from jarvis.logs.query import LogFilter, parse_level
from jarvis.logs.redact import Redactor
from jarvis.logs.service import LOG_EVENT, LogService

__all__ = [
    "ACCESS_LOGGER",
    "LOG_EVENT",
    "CaptureHandler",
    "LogFilter",
    "LogService",
    "LogWriter",
    "Redactor",
    "parse_level",
    "request_id_var",
]
