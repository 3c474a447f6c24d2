"""Request rate limits per API key (RATE_LIMIT, e.g. "600/minute"): a 429 with Retry-After over it.

A pure ASGI middleware outside the body checks (app/request_limits.py), so a refused request's
body is never read; inside SecurityHeaders and RequestMetrics, so a 429 carries the headers and
is counted. Only /v1 calls are limited: /healthz, /readyz, /metrics, the dashboard's pages and
static files are not. A call is counted against its Bearer key (or dashboard session), by the
key's digest, before the key is looked up: an unknown key's flood is limited too, and costs no
database lookup.

The counts live in Redis when the deployment's broker is Redis (one count for every API
process), else in this process's memory (the embedded deployment's single process); the
`limits` library's sliding window counter, one round trip per call. Should Redis be
unreachable, calls go through (logged): a rate limiter must not take the API down with it.
"""
import hashlib
import json
import logging
import math
import time
from functools import lru_cache

from limits import RateLimitItem, parse_many
from limits.aio.storage import Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string
from starlette.types import ASGIApp, Receive, Scope, Send

from app.config import Settings, get_settings
from app.ui.sessions import COOKIE

log = logging.getLogger(__name__)
LIMITED_PREFIX = "/v1/"


def storage_uri(settings: Settings) -> str:
    """RATE_LIMIT_STORAGE_URL, else the broker's Redis, else this process's memory."""
    if settings.rate_limit_storage_url:
        return settings.rate_limit_storage_url
    broker = settings.resolved_broker_url
    if broker.startswith(("redis://", "rediss://")):
        return "async+" + broker
    return "async+memory://"


@lru_cache
def limiter() -> tuple[SlidingWindowCounterRateLimiter, list[RateLimitItem]] | None:
    """The limiter and the limits of RATE_LIMIT; None when it is off (empty or 0)."""
    settings = get_settings()
    text = settings.rate_limit.strip()
    if text in ("", "0"):
        return None
    uri = storage_uri(settings)
    options = {"implementation": "redispy"} if "redis" in uri.split("://")[0] else {}
    storage: Storage = storage_from_string(uri, **options)
    return SlidingWindowCounterRateLimiter(storage), parse_many(text)


def caller(scope: Scope) -> str | None:
    """Whom a call counts against: a digest of its Bearer key, else of its dashboard session."""
    headers = dict(scope.get("headers") or [])
    auth = headers.get(b"authorization", b"")
    scheme, _, key = auth.partition(b" ")
    if scheme.lower() == b"bearer" and key.strip():
        return "key:" + hashlib.sha256(key.strip()).hexdigest()[:32]
    for part in headers.get(b"cookie", b"").split(b";"):
        name, _, value = part.strip().partition(b"=")
        if name.decode("latin-1") == COOKIE and value:
            return "session:" + hashlib.sha256(value).hexdigest()[:32]
    return None


def describe(item: RateLimitItem) -> str:
    """'600/minute' as RATE_LIMIT writes it."""
    per = "" if item.multiples == 1 else f"{item.multiples} "
    return f"{item.amount}/{per}{item.GRANULARITY.name}"


class RateLimits:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = limiter() if scope["type"] == "http" and scope["path"].startswith(LIMITED_PREFIX) else None
        who = caller(scope) if found else None
        if found and who:
            strategy, items = found
            for item in items:
                try:
                    allowed = await strategy.hit(item, who)
                    if not allowed:
                        reset = (await strategy.get_window_stats(item, who)).reset_time
                except Exception:  # noqa: BLE001 - the store is down: let the call through
                    log.warning("rate limit store unreachable; not limiting", exc_info=True)
                    break
                if not allowed:
                    await _refuse(send, item, max(1, math.ceil(reset - time.time())))
                    return
        await self.app(scope, receive, send)


async def _refuse(send: Send, item: RateLimitItem, retry_after: int) -> None:
    limit = describe(item)
    message = f"over the rate limit of {limit} per API key (RATE_LIMIT); retry after {retry_after} s"
    body = json.dumps({"detail": message, "errors": [{"field": "Authorization", "message": message}]}).encode()
    await send({"type": "http.response.start", "status": 429, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(retry_after).encode()), (b"x-ratelimit-limit", limit.encode())]})
    await send({"type": "http.response.body", "body": body})
