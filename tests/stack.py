"""Starts a real Trainyard deployment (migrations, uvicorn API, Celery worker) as subprocesses."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.devices import CUDA

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    """One deployment: its own data folder, database, queue, API process and worker processes."""

    def __init__(self, name: str, tmp: Path, env: dict[str, str]):
        self.name, self.tmp = name, tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "DATA_DIR": str(tmp / "data"), "PYTHONUNBUFFERED": "1",
                    "METRICS_FLUSH_SECONDS": "0.2", **env}
        self.api: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self._logs: list[Path] = []

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([PYTHON, "-m", "app.cli", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, check=check, timeout=120)

    def _spawn(self, name: str, *args: str) -> subprocess.Popen:
        log = self.tmp / f"{name}.log"
        self._logs.append(log)
        return subprocess.Popen([PYTHON, "-m", "app.cli", *args], cwd=ROOT, env=self.env,
                                stdout=log.open("ab"), stderr=subprocess.STDOUT,
                                start_new_session=True)

    def start(self, *, worker: bool = True) -> "Stack":
        """Migrates and starts the API, and a worker unless ``worker=False`` (for tests of the API alone)."""
        self.start_api()
        if worker:
            self.start_worker()
        self.wait_ready()
        return self

    def start_api(self) -> subprocess.Popen:
        """Migrates and starts the API alone (a deployment whose workers run elsewhere)."""
        self.cli("migrate")
        self.api = self._spawn("api", "api", "--port", str(self.port))
        return self.api

    def start_worker(self, *args: str) -> subprocess.Popen:
        """`trainyard worker` with ``args``; by default one CPU worker, which is what a bare
        `trainyard worker` starts on a machine without a GPU (CI)."""
        n = len(self.workers)
        args = args or (("--cpu", "1") if CUDA else ())
        proc = self._spawn(f"worker{n}", "worker", "--loglevel", "INFO", *args)
        self.workers.append(proc)
        log = self._logs[-1]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if b" ready." in log.read_bytes():
                return proc
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"worker did not start:\n{self.logs()}")

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.api.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"API did not become ready:\n{self.logs()}")

    def new_key(self, tenant: str) -> str:
        return self.cli("keys", "create", f"key-{tenant}", "--tenant", tenant).stdout.strip().splitlines()[-1]

    def client(self, key: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def worker_log_count(self, text: str) -> int:
        """How many times the workers' logs (so far) contain ``text``."""
        return sum(p.read_text(errors="replace").count(text) for p in self._logs
                   if p.name.startswith("worker") and p.exists())

    def api_log(self) -> str:
        """The API process's log so far (uvicorn's access lines among it)."""
        return (self.tmp / "api.log").read_text(errors="replace")

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}"
                         for p in self._logs if p.exists())

    @staticmethod
    def _stop(proc: subprocess.Popen) -> None:
        # SIGTERM to the main process only: Celery shuts its own pool down.
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever the process group left behind
        except ProcessLookupError:
            pass
        proc.wait()

    def stop(self) -> None:
        for proc in [*self.workers, *([self.api] if self.api else [])]:
            self._stop(proc)
