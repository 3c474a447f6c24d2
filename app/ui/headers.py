"""Security headers on every response: a Content-Security-Policy, nosniff, a same-origin Referrer-Policy.

A pure ASGI middleware that adds them to ``http.response.start`` and passes every body
message on as it comes: Starlette's BaseHTTPMiddleware would put the response through a
stream of its own, which an SSE stream (GET /v1/jobs/{id}/events) does not survive well.
A response that sets one of these headers itself keeps its own.
"""
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'")
# /redoc only, and only what its vendored bundle needs (tests/browser/ sees the violations
# without them): Redoc styles itself with styled-components, which writes <style> elements
# at run time, and builds its search index in a Web Worker started from a blob: URL.
# Swagger UI (/docs) runs under the strict policy.
REDOC_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'") + "; worker-src 'self' blob:"
RELAXED = {"/redoc": REDOC_CSP}
HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


class SecurityHeaders:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = RELAXED.get(scope["path"], CSP)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", policy)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
