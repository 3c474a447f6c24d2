"""The sender: posts due deliveries to their receivers from a thread pool, signed, and records each outcome.

It runs in every worker's main process (worker/celery_app.py starts it beside the reaper), never
in a request: the embedded default (`make run`) and the production set both run a worker. Each
sender claims at most one delivery per webhook at a time, in threads of its own, so a receiver
that is slow (WEBHOOK_TIMEOUT_SECONDS) or dead holds one thread and nothing else.
"""
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
from sqlalchemy.exc import OperationalError

from app.config import get_settings
from app.db import session_scope
from app.webhooks import deliveries, signing
from app.webhooks.addresses import RefusedUrl, check
from app.webhooks.deliveries import Claimed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    status_code: int | None  # None: no answer (refused address, unreachable, timed out)
    error: str | None


def run_once(work: Callable, /, **kwargs):
    """One unit of work; the worker passes its own (worker/unit_of_work.py: it holds forks off)."""
    with session_scope() as session:
        return work(db_session=session, **kwargs)


def body_of(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def http_client(timeout: float) -> httpx.Client:
    """The sender's one client (thread-safe; making one costs about 20 ms, its TLS context): redirects not
    followed, no proxy from the environment (the send goes to the address it checked)."""
    return httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False)


def post(claimed: Claimed, *, client: httpx.Client, allow_private: bool) -> Outcome:
    """One attempt: the addresses checked now, the body signed now, sent to a checked address.

    Connecting to the address that was checked (not the name again) closes the gap a DNS answer
    that changes between the check and the connect (rebinding) would open. Redirects are not
    followed: a 3xx is a failed attempt. The answer's body is never read.
    """
    try:
        target = check(claimed.url, allow_private=allow_private)
    except RefusedUrl as exc:
        return Outcome(None, f"refused: {exc}")
    body = body_of(claimed.payload)
    headers = signing.headers(secret=claimed.secret, msg_id=claimed.id, timestamp=int(time.time()), body=body)
    headers["host"] = target.url.netloc.decode("ascii")
    extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
    error = "no address"
    for address in target.addresses:
        try:
            with client.stream("POST", target.url.copy_with(host=str(address)), content=body,
                               headers=headers, extensions=extensions) as answer:
                ok = 200 <= answer.status_code < 300
                return Outcome(answer.status_code, None if ok else f"HTTP {answer.status_code}")
        except httpx.ConnectError as exc:  # the next address, if the name has another
            error = f"could not connect to {address}: {exc}"
        except httpx.HTTPError as exc:
            return Outcome(None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    return Outcome(None, error)


class Sender:
    """Claims due deliveries and sends each in a pool thread; ``poll`` once, or ``run`` in a loop."""

    def __init__(self, *, run: Callable = run_once, threads: int | None = None):
        settings = get_settings()
        self.threads = threads or settings.webhook_sender_threads
        self.allow_private = settings.webhook_allow_private
        self._http = http_client(settings.webhook_timeout_seconds)
        self.poll_seconds, self._run = settings.webhook_poll_seconds, run
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="webhook-send")
        self._busy: set[str] = set()  # webhooks with a send in flight from this sender
        self._lock, self._wake, self.stopped = threading.Lock(), threading.Event(), threading.Event()

    def poll(self) -> int:
        """Claims what the free threads can take and starts sending it; returns how many."""
        with self._lock:
            busy, free = frozenset(self._busy), self.threads - len(self._busy)
        if free <= 0:
            return 0
        claimed = self._run(deliveries.claim_due, limit=free, busy=busy)
        with self._lock:
            self._busy.update(c.webhook_id for c in claimed)
        for c in claimed:
            self._pool.submit(self._send, c)
        return len(claimed)

    def _send(self, claimed: Claimed) -> None:
        try:
            outcome = post(claimed, client=self._http, allow_private=self.allow_private)
            status = self._run(deliveries.record, claimed=claimed, status_code=outcome.status_code,
                               error=outcome.error)
            if status != "delivered" and not self.stopped.is_set():  # a stop cuts sends short: no news
                log.warning("webhook %s: delivery %s attempt %d failed (%s); now %s", claimed.webhook_id,
                            claimed.id, claimed.attempt, outcome.error, status)
        except Exception:  # recorded next time: the lease runs out and the delivery is due again
            log.exception("webhook %s: delivery %s could not be sent or recorded", claimed.webhook_id, claimed.id)
        finally:
            with self._lock:
                self._busy.discard(claimed.webhook_id)
            self._wake.set()  # a thread is free: that webhook's next delivery may go now

    def wait(self, timeout: float) -> None:
        """Until a send ends (or ``timeout`` seconds): a thread is free again."""
        self._wake.wait(timeout)
        self._wake.clear()

    def in_flight(self) -> int:
        with self._lock:
            return len(self._busy)

    def run(self) -> None:
        """Polls every WEBHOOK_POLL_SECONDS (at once when a send ends) until stopped."""
        while not self.stopped.is_set():
            try:
                self.poll()
            except OperationalError as exc:  # the database is down: one line, and the next poll tries again
                log.warning("webhook sender: the database is unavailable (%s)", type(exc.orig).__name__)
            except Exception:
                log.exception("webhook sender poll failed")
            self.wait(self.poll_seconds)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="trainyard-webhooks", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.stopped.set()
        self._wake.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()
