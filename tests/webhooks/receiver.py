"""A real webhook receiver for the tests: an http.server on 127.0.0.1 in a thread, outside our code.

Each path answers as the test scripts it: a list of status codes taken in turn (the last one
repeats), and a path may be held until the test releases it (a slow receiver, without sleeps).
Every request is kept: path, headers, body.
"""
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    port: int
    answers: dict[str, list[int]] = field(default_factory=dict)
    held: dict[str, threading.Event] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        with self.arrived:
            return [r for r in self.received if r.path == path]

    def wait_for(self, path: str, count: int = 1, timeout: float = 30) -> list[Received]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len([r for r in self.received if r.path == path]) >= count,
                                         timeout), f"{path} got {len(self.at(path))} requests, not {count}"
        return self.at(path)


def _handler(receiver: Receiver):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            with receiver.arrived:
                receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                receiver.arrived.notify_all()
                codes = receiver.answers.get(self.path, [200])
                code = codes.pop(0) if len(codes) > 1 else codes[0]
            if self.path in receiver.held:
                receiver.held[self.path].wait(60)
            self.send_response(code)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):  # quiet: pytest shows failures, not every request
            pass

    return Handler


@contextmanager
def receiver() -> Iterator[Receiver]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), None)
    found = Receiver(server.server_address[1])
    server.RequestHandlerClass = _handler(found)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        for event in found.held.values():
            event.set()
        server.shutdown()
        server.server_close()


def dead_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then closed): a connect there is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
