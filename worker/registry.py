"""Keeps this worker's row in the registry (GET /v1/workers) fresh from its main process.

Its writes run once each (worker/unit_of_work.run_once), not retried while the database is
down: the heartbeat tries again in HEARTBEAT_SECONDS, and a shutdown must not wait on it.
"""
import logging
import threading

from app.config import get_settings
from app.models import Worker
from app.workers import repository
from worker import drain, unit_of_work
from worker.identity import Identity, current

log = logging.getLogger(__name__)


def _row(me: Identity) -> Worker:
    return Worker(name=me.name, host=me.host, pid=me.pid, kind=me.kind, device_index=me.device_index,
                  device_name=me.device_name, memory_bytes=me.memory_bytes, devices=me.devices,
                  queue=get_settings().queue_for(me.kind))


def register(me: Identity) -> None:
    unit_of_work.run_once(repository.register, worker=_row(me))


def set_current_job(job_id: str | None) -> None:
    """Called by the training process; a failure here must never stop a job."""
    try:
        unit_of_work.run_once(repository.set_current_job, name=current().name, job_id=job_id)
    except Exception:
        log.warning("could not record the current job in the worker registry", exc_info=True)


class Registrar(threading.Thread):
    """Registers the worker, then beats every HEARTBEAT_SECONDS; marks it stopped at the end."""

    def __init__(self):
        super().__init__(daemon=True, name="trainyard-registry")
        self.me, self.stopped, self.registered = current(), threading.Event(), False
        self._wake, self._woken = threading.Event(), False

    def register(self) -> None:
        try:
            register(self.me)
            self.registered = True
        except Exception:  # the database may be restarting: the heartbeat tries again
            log.warning("could not register worker %s", self.me.name, exc_info=True)

    def run(self) -> None:
        while True:
            self._wake.wait(get_settings().heartbeat_seconds)
            self._wake.clear()
            if self.stopped.is_set():
                return
            try:
                if self.registered:
                    self.registered = self.beat()
            except Exception:
                log.warning("worker registry heartbeat failed", exc_info=True)
            if not self.registered:
                self.register()

    def beat(self) -> bool:
        status = "draining" if drain.is_draining() else "online"
        return unit_of_work.run_once(repository.heartbeat, name=self.me.name, status=status)

    def beat_now(self) -> None:
        """Has the thread beat at once (the worker began to drain). Safe in a signal handler:
        it never queries the database itself (the handler may have interrupted this thread's
        own query, whose lock it would then wait for), and it takes the event's lock only
        the first time, so a second signal cannot interrupt a first one holding it."""
        if not self._woken:
            self._woken = True
            self._wake.set()

    def stop(self) -> None:
        self._woken = True  # from here on a signal's beat_now does nothing
        self.stopped.set()
        self._wake.set()
        if self.is_alive():
            self.join(timeout=10)  # a beat under way would overwrite "stopped"
        try:
            unit_of_work.run_once(repository.stopped, name=self.me.name)
        except Exception:
            log.warning("could not mark worker %s stopped", self.me.name, exc_info=True)
