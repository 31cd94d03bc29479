"""Structured logs: one JSON object per line, with the request id of the request being served.

Log calls pass their structured part as ``extra={"fields": {...}}``; the request id comes from a context
variable the middleware sets, so every line written while serving a request carries it. Records are formatted
where they are logged (the context variable is only visible there) and written by a background thread, so a
slow stderr never blocks the event loop.
"""

from __future__ import annotations

import atexit
import contextvars
import json
import logging
import logging.handlers
import queue
import sys
import time

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("gsv_request_id", default=None)
# uvicorn's own loggers; their lines go through our formatter too (its access log is replaced by ours).
LOGGERS = ("gsv_gateway", "uvicorn", "uvicorn.error")

_listener: logging.handlers.QueueListener | None = None


class JsonFormatter(logging.Formatter):
    """``{"ts": ..., "level": ..., "logger": ..., "message": ..., "request_id": ..., <fields>}``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id:
            entry["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str = "INFO") -> None:
    """Send the gateway's and uvicorn's logs to stderr as JSON lines, written off the event loop (idempotent)."""
    global _listener
    if _listener is None:
        records: queue.SimpleQueue = queue.SimpleQueue()
        writer = logging.StreamHandler(sys.stderr)
        writer.setFormatter(logging.Formatter("%(message)s"))  # the record arrives formatted already
        _listener = logging.handlers.QueueListener(records, writer)
        _listener.start()
        atexit.register(_listener.stop)  # flushes what is still queued
        handler = logging.handlers.QueueHandler(records)
        handler.setFormatter(JsonFormatter())
        for name in LOGGERS:
            logger = logging.getLogger(name)
            logger.handlers[:] = [handler]
            logger.propagate = False
    for name in LOGGERS:
        logging.getLogger(name).setLevel(level.upper())
    logging.getLogger("uvicorn.access").disabled = True
