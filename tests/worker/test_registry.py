"""The worker's registry row, as its main process keeps it (worker/registry.py, worker/celery_app.py)."""
import threading
import time

import pytest
from sqlalchemy import event

from app import config, db
from app.models import Worker
from tests.embedded import embedded  # noqa: F401
from worker import celery_app, drain
from worker.identity import current
from worker.registry import Registrar


def _status() -> str:
    with db.get_session_factory()() as s:
        return s.get(Worker, current().name).status


@pytest.fixture
def registrar(embedded, monkeypatch):  # noqa: F811
    # No periodic beat in the test's time: a status change can only come from beat_now.
    monkeypatch.setenv("HEARTBEAT_SECONDS", "3600")
    config.get_settings.cache_clear()
    registrar = Registrar()
    registrar.register()
    registrar.start()
    monkeypatch.setattr(celery_app, "_registrar", registrar)
    yield registrar
    registrar.stop()
    drain.clear()


def test_the_shutdown_signal_handler_queries_nothing_and_the_registry_shows_draining(registrar):
    # Celery calls _drain inside the SIGTERM handler, which may interrupt this thread in
    # the middle of its own query: a query of the handler's would then wait on that one's
    # lock (SQLite's busy timeout, 30 s) and hang the shutdown. Once it took a second SIGTERM.
    queried_in_handler, in_handler = [], threading.local()

    def record(conn, cursor, statement, *args):
        if getattr(in_handler, "on", False):
            queried_in_handler.append(statement)

    engine = db.get_engine()
    event.listen(engine, "before_cursor_execute", record)
    try:
        with db.get_session_factory()() as s:  # this thread's open write transaction
            s.get(Worker, current().name).status = "online"
            s.flush()
            in_handler.on = True
            celery_app._drain()
            celery_app._drain()  # a second signal
            in_handler.on = False
            s.commit()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert queried_in_handler == []
    deadline = time.monotonic() + 10
    while _status() != "draining" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _status() == "draining"  # beaten by the registry's thread, not the handler


def test_stop_marks_the_worker_stopped_after_the_last_beat(registrar):
    registrar.beat_now()
    registrar.stop()
    assert not registrar.is_alive()
    assert _status() == "stopped"
