"""A second SIGTERM inside Celery's handler for the first one (worker/drain.py one_shutdown_signal_at_a_time)."""
import os
import signal
import threading

import pytest
from celery.apps.worker import install_worker_term_handler
from celery.signals import worker_shutting_down
from celery.worker import state

from worker import celery_app, drain


class _LockThatLetsASignalIn:
    """worker_shutting_down's lock, with a second SIGTERM sent while the first handler holds it:
    the window a process-group kill plus a parent's forward can hit."""

    def __init__(self):
        self.lock, self.sent = threading.Lock(), False

    def __enter__(self):
        if not self.lock.acquire(timeout=2):
            raise AssertionError("the nested handler waited on the signal's lock: a deadlock")
        if not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the pending handler runs at the next bytecode boundary
                pass

    def __exit__(self, *_):
        self.lock.release()


class _Worker:
    hostname = "test-worker"


@pytest.fixture
def celery_sigterm(monkeypatch):
    # The worker's own receiver (celery_app._drain) is connected: with none, send takes no lock.
    assert celery_app._drain and worker_shutting_down.receivers
    previous = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(worker_shutting_down, "lock", _LockThatLetsASignalIn())
    install_worker_term_handler(_Worker())  # Celery's own warm-shutdown handler
    yield
    signal.signal(signal.SIGTERM, previous)
    state.should_stop = None
    drain.clear()


def test_a_sigterm_inside_the_handler_for_the_first_is_dropped_not_deadlocked(celery_sigterm):
    drain.one_shutdown_signal_at_a_time()
    os.kill(os.getpid(), signal.SIGTERM)
    assert state.should_stop == 0  # the first signal still asked for a warm shutdown


def test_without_the_guard_the_nested_handler_deadlocks(celery_sigterm):
    # The failure the guard prevents, shown on Celery's handler as it is.
    with pytest.raises(AssertionError, match="deadlock"):
        os.kill(os.getpid(), signal.SIGTERM)


def test_a_later_signal_is_handled_as_before(celery_sigterm):
    calls = []
    signal.signal(signal.SIGTERM, lambda *_: calls.append(1))
    drain.one_shutdown_signal_at_a_time()
    drain.one_shutdown_signal_at_a_time()  # wrapping twice is harmless
    os.kill(os.getpid(), signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGTERM)
    assert calls == [1, 1]


def test_a_sigterm_inside_the_sigint_handler_is_dropped_too(celery_sigterm):
    # Ctrl-C reaches the whole group, and `trainyard run` then forwards a SIGTERM.
    seen = []

    def on_sigint(*_):
        seen.append("int")
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):
            pass

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        signal.signal(signal.SIGTERM, lambda *_: seen.append("term"))
        drain.one_shutdown_signal_at_a_time()
        os.kill(os.getpid(), signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert seen == ["int"]
