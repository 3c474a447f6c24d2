"""The processes' logging: text for a terminal, or JSON lines (LOG_FORMAT=json) for a log store.

Every line a job causes carries the job's fields (job_id, tenant, attempt, worker): the
code that works on a job opens ``job_context(...)`` once, and a filter copies the context
onto each record, so no log call has to pass them. A context variable, not a thread-local:
the API's event loop runs many requests on one thread. A new thread starts with an empty
context, so a thread working for a job (the lease heartbeat) opens its own.
"""
import logging
import sys
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter

JOB_FIELDS = ("job_id", "tenant", "attempt", "worker")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_job: ContextVar[dict[str, Any]] = ContextVar("trainyard_job", default={})


@contextmanager
def job_context(**fields: Any):
    """The job's fields on every log line inside the block (added to any already set)."""
    token = _job.set({**_job.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _job.reset(token)


def add_job_fields(**fields: Any) -> None:
    """Adds fields learnt inside a job_context (the attempt once claimed, the tenant once loaded)."""
    _job.set({**_job.get(), **{k: v for k, v in fields.items() if v is not None}})


def job_fields() -> dict[str, Any]:
    return dict(_job.get())


class JobFields(logging.Filter):
    """Copies the current job's fields onto the record (a field the call passed in ``extra`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _job.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class TextFormatter(logging.Formatter):
    """The text format, with the job's fields appended as key=value when there are any."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(f"{k}={getattr(record, k)}" for k in JOB_FIELDS if hasattr(record, k))
        return f"{line} [{fields}]" if fields else line


def formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        # timestamp: ISO 8601 in UTC; level and logger renamed to the names log stores expect.
        return JsonFormatter("%(levelname)s %(name)s %(message)s", timestamp=True,
                             rename_fields={"levelname": "level", "name": "logger"})
    return TextFormatter(TEXT_FORMAT)


def configure(log_format: str | None = None, level: int | str = logging.INFO) -> None:
    """Points the root logger at stderr in LOG_FORMAT; replaces its handlers, so it can run twice."""
    if log_format is None:
        from app.config import get_settings

        log_format = get_settings().log_format
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    handler.addFilter(JobFields())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_trainyard", False):
            root.removeHandler(old)
    handler._trainyard = True
    root.addHandler(handler)
    root.setLevel(level)


class JobPathFields:
    """ASGI middleware: a request on a job's path (/v1/jobs/{job_id}...) logs with the job's id.

    Set as the response starts, after the router has matched the path (its parameters are on
    the scope by then) and before the server's access line, which is logged in this same
    context: uvicorn writes it while sending the response's start.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message):
            if message["type"] == "http.response.start":
                job_id = scope.get("path_params", {}).get("job_id")
                if job_id:
                    add_job_fields(job_id=job_id)
            await send(message)

        await self.app(scope, receive, sending)
