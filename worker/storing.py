"""The worker's writes to the artifact store, and what it does while the store is down.

A checkpoint is worth a try, not a job: one that cannot be stored is logged and counted,
training goes on, and the next one is tried when it falls due; the job's checkpoint_step
moves only after a put succeeded, so a retry resumes from a whole checkpoint. The final
weights are the job's result: their put is retried with backoff for STORE_RETRY_SECONDS,
then the attempt is given up with StoreUnavailable and the job goes back to the queue
(worker/runner.py), to resume from its last stored checkpoint on this or another worker.
"""
import logging
import time

from app.config import get_settings
from app.storage import store_unreachable

log = logging.getLogger(__name__)
FIRST_DELAY_SECONDS, MAX_DELAY_SECONDS = 0.5, 10.0


class StoreUnavailable(Exception):
    """The artifact store could not be reached for long enough that the attempt is given up."""


class Checkpoints:
    """One attempt's checkpoint puts: failures are counted, and never raised."""

    def __init__(self, job_id: str):
        self.job_id, self.failed, self.failing = job_id, 0, 0

    def put(self, store, key: str, blob: bytes, step: int) -> bool:
        """Stores the checkpoint; False (logged) when the store refused it."""
        try:
            store.put(key, blob)
        except Exception as exc:  # noqa: BLE001 - whatever the store raised, training goes on
            self.failed, self.failing = self.failed + 1, self.failing + 1
            log.warning("job %s: checkpoint at step %d not stored (%s: %s); training goes on, the next "
                        "checkpoint is tried when due (%d failed in this attempt)",
                        self.job_id, step, type(exc).__name__, exc, self.failed)
            return False
        if self.failing:
            log.info("job %s: checkpoint at step %d stored after %d failed", self.job_id, step, self.failing)
            self.failing = 0
        return True


def put_retrying(store, key: str, data: bytes, what: str) -> None:
    """store.put, tried again with backoff for STORE_RETRY_SECONDS; then StoreUnavailable."""
    deadline, delay = time.monotonic() + get_settings().store_retry_seconds, FIRST_DELAY_SECONDS
    while True:
        try:
            return store.put(key, data)
        except Exception as exc:  # noqa: BLE001 - every failure of a put is worth another try
            if time.monotonic() + delay > deadline:
                raise StoreUnavailable(f"the artifact store did not take the {what} for "
                                       f"{get_settings().store_retry_seconds:g} s "
                                       f"(STORE_RETRY_SECONDS): {type(exc).__name__}: {exc}") from exc
            log.warning("storing the %s failed (%s: %s); trying again in %.1f s", what, type(exc).__name__, exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_SECONDS)


def unreachable(exc: BaseException) -> bool:
    """Whether an attempt failed because the store was down (not the job's fault: worth a retry)."""
    return isinstance(exc, StoreUnavailable) or store_unreachable(exc)


def unreachable_reason(exc: BaseException) -> str:
    """Why the attempt is retried, in words, for an exception ``unreachable`` took."""
    return str(exc) if isinstance(exc, StoreUnavailable) else \
        f"the artifact store was unreachable: {type(exc).__name__}: {exc}"
