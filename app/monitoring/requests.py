"""The API's requests and their latencies, per route template (not per path: a job id in a
label would make one series per job), counted by prometheus-client in this process."""
import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter("trainyard_http_requests", "HTTP requests answered, by route template, method and status",
                   ["method", "route", "status"])
LATENCY = Histogram("trainyard_http_request_duration_seconds",
                    "Time from a request's arrival to the end of its response body (an event stream: "
                    "to its end), by route template and method", ["method", "route"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
UNMATCHED = "unmatched"  # a 404 for a path no route has: one series, whatever was asked


class RequestMetrics:
    """Pure ASGI (no BaseHTTPMiddleware), so event streams pass through unbuffered."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500  # an exception before any response is a 500

        async def recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording)
        finally:
            route = scope.get("route")  # set by the router on the scope it matched
            template = getattr(route, "path", None) or UNMATCHED
            if template == "/metrics":  # Prometheus's own scrapes would only measure themselves
                return
            method = scope["method"]
            REQUESTS.labels(method, template, str(status)).inc()
            LATENCY.labels(method, template).observe(time.perf_counter() - started)
