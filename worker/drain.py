"""Graceful shutdown: a worker asked to stop hands its running job back instead of finishing it.

The worker's main process (which receives SIGTERM from docker, systemd or Ctrl-C) marks
itself draining with a file named after its pid; its training process, a child, checks
for its parent's file at every metrics flush (about once a second), checkpoints, and
hands the job back to the queue. Celery's warm shutdown then ends as soon as the task
returns, well inside a container's grace period, and another worker resumes the job
from the checkpoint.
"""
import os
import tempfile
from pathlib import Path


def _marker(pid: int) -> Path:
    return Path(tempfile.gettempdir()) / f"trainyard-drain-{pid}"


def start_draining() -> None:
    """Called in the worker's main process when it begins to shut down."""
    _marker(os.getpid()).touch()


def is_draining() -> bool:
    """Called in the worker's main process."""
    return _marker(os.getpid()).exists()


def clear() -> None:
    """Called when a worker starts: a marker left by an earlier process with this pid is stale."""
    _marker(os.getpid()).unlink(missing_ok=True)


def parent_is_draining() -> bool:
    """Called in the training process: is the worker that forked it shutting down?"""
    return _marker(os.getppid()).exists()
