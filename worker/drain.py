"""Graceful shutdown: a worker asked to stop hands its running job back instead of finishing it.

The worker's main process (which receives SIGTERM from docker, systemd or Ctrl-C) marks
itself draining with a file named after its pid; its training process, a child, checks
for its parent's file at every metrics flush (about once a second), checkpoints, and
hands the job back to the queue (so it does when it is sent SIGTERM itself, as a
process-group kill does). Celery's warm shutdown then ends as soon as the task
returns, well inside a container's grace period, and another worker resumes the job
from the checkpoint.
"""
import os
import signal
import tempfile
import threading
from collections.abc import Callable
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


def told_to_drain() -> bool:
    """Called in the training process: is the worker that forked it shutting down, or was
    this process itself sent SIGTERM while it trained?"""
    return _signalled or _held_sigterm() or _marker(os.getppid()).exists()


_signalled = False
_held = False  # SIGTERM blocked in every thread (a data parallel rank: hold_sigterm)


def hold_sigterm() -> None:
    """For a data parallel rank, before it starts any thread: SIGTERM is blocked in every thread and
    read as pending at the flushes (told_to_drain). Handled, it interrupted a gloo I/O thread's wait,
    which aborted the rank ("terminate called without an active exception") instead of draining it."""
    global _held
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    _held = True


def _held_sigterm() -> bool:
    return _held and signal.SIGTERM in signal.sigpending()


def _on_sigterm(signum, frame) -> None:
    global _signalled
    _signalled = True  # a flag only: safe whatever the signal interrupted


def drain_on_sigterm() -> Callable[[], None]:
    """While a job trains, SIGTERM to the training process itself drains it too, as SIGTERM
    to its worker does, rather than killing it mid-step (the job would then wait out its
    lease and lose an attempt). A process-group kill sends it that: systemd's default
    KillMode, ``kill -- -PGID``, a test harness. Returns what puts the old handler back:
    an idle process (Celery resets SIGTERM to its default in them) still simply ends."""
    global _signalled
    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # a job run in-process by a test: signals are the main thread's
    _signalled = False
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    return lambda: signal.signal(signal.SIGTERM, previous)


def one_shutdown_signal_at_a_time() -> None:
    """Makes a SIGTERM or SIGINT that lands inside Celery's handler for an earlier one a no-op.

    Celery's handler sends worker_shutting_down, whose dispatch takes a plain (non-reentrant)
    lock. A second signal arriving in that window (a process-group kill plus the parent's own
    forward: `trainyard run`, systemd, docker) ran the handler again in the same thread, which
    then waited on that lock forever: the worker never stopped (about 1 stop in 50 in CI).
    The first handler has already asked for the shutdown, so dropping the nested one loses
    nothing; a signal after it returns is handled as before (a second Ctrl-C: cold shutdown).
    """
    for sig in (signal.SIGTERM, signal.SIGINT):
        handler = signal.getsignal(sig)
        if callable(handler) and not getattr(handler, "_one_at_a_time", False):
            signal.signal(sig, _one_at_a_time(handler))


_in_handler = False  # one flag for both signals: a SIGTERM inside the SIGINT handler deadlocks too


def _one_at_a_time(handler):
    def guarded(signum, frame):
        global _in_handler
        if _in_handler:
            return
        _in_handler = True
        try:
            handler(signum, frame)
        finally:
            _in_handler = False

    guarded._one_at_a_time = True
    return guarded
