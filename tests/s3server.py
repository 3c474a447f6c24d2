"""A real S3-protocol server for the tests: moto's server mode as a subprocess, behind a gate.

The gate is a TCP relay on its own port, in the test's process: closing it refuses every new
connection and cuts the open ones, as a store outage does, while the moto process (which
keeps its objects in memory only) keeps what it holds; opening it again ends the outage.
"""
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import boto3
import pytest

from tests.stack import free_port

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}


class Gate:
    """Relays 127.0.0.1:port to the server's port while open; refuses and cuts while closed."""

    def __init__(self, target_port: int):
        self.target, self.port = target_port, free_port()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        # Set: the gate closes once this many bytes more have gone to the server (an outage mid-upload).
        self.cut_at: int | None = None
        self.open()

    def open(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def close(self) -> None:
        """The outage: nothing listens on the port, and every relayed connection is cut."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed
            server = socket.create_connection(("127.0.0.1", self.target))
            with self._lock:
                self._conns += [client, server]
            for a, b, upstream in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._pump, args=(a, b, upstream), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        try:
            while data := src.recv(1 << 16):
                if upstream and self.cut_at is not None:
                    if len(data) > self.cut_at:
                        dst.sendall(data[:self.cut_at])  # the part that made it before the outage
                        self.cut_at = None
                        self.close()
                        return
                    self.cut_at -= len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class S3Server:
    """`python -m moto.server` on a free port, a bucket in it, and a Gate in front of it."""

    def __init__(self, log: Path):
        self.server_port = free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                      "-p", str(self.server_port)], env={**os.environ, **CREDENTIALS},
                                     stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_listening()
        self.gate = Gate(self.server_port)
        self.endpoint = f"http://127.0.0.1:{self.gate.port}"
        self.bucket = f"trainyard-{uuid.uuid4().hex[:8]}"
        self.client().create_bucket(Bucket=self.bucket)

    def _wait_listening(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "moto server exited"
            try:
                socket.create_connection(("127.0.0.1", self.server_port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("moto server did not start listening")

    def client(self):
        """A client of the store straight to the server (past the gate: it sees through outages)."""
        return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{self.server_port}",
                            aws_access_key_id="testing", aws_secret_access_key="testing",
                            region_name="us-east-1")

    def env(self, prefix: str) -> dict[str, str]:
        """The settings that point a Trainyard process at s3://bucket/prefix through the gate."""
        return {**CREDENTIALS, "ARTIFACT_URL": f"s3://{self.bucket}/{prefix}", "S3_ENDPOINT_URL": self.endpoint}

    def names(self, prefix: str) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def stop(self) -> None:
        self.gate.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto server for the module's tests (import this fixture into a test module)."""
    server = S3Server(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


@pytest.fixture
def aws_env(monkeypatch):
    """This process's AWS credentials for the moto server."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
