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
# The API reference pages only, and only what their vendored bundles need: Swagger UI and
# Redoc (styled-components) write <style> elements and style= attributes at run time, and
# Redoc runs its search index in a Web Worker it starts from a blob: URL.
DOCS_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
RELAXED = {"/docs": DOCS_CSP, "/redoc": DOCS_CSP + "; worker-src 'self' blob:"}
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
