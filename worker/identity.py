"""Who this worker is: the device it owns, as `trainyard worker` (worker/supervisor.py) set it.

The supervisor probes the GPUs in a separate process and hands each worker its device's
name and memory in TRAINYARD_WORKER, so no worker's main process ever initializes CUDA:
its training processes are forked from it, and CUDA does not survive a fork.
"""
import json
import os
import socket
from dataclasses import asdict, dataclass

ENV = "TRAINYARD_WORKER"


@dataclass
class Identity:
    name: str
    kind: str  # gpu | cpu
    device_index: int | None
    device_name: str
    memory_bytes: int | None
    host: str = ""
    pid: int = 0
    threads: int = 0  # torch threads per training process (worker/threads.py); 0: torch's default
    devices: int = 1  # GPUs it owns (`trainyard worker --gpus-per-worker`); a job may use up to this many

    def to_env(self) -> str:
        return json.dumps(asdict(self))


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        model = ""
    return f"{model or 'CPU'} ({os.cpu_count()} cores)"


def host_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return None


_current: Identity | None = None


def current() -> Identity:
    """This process's worker: from the supervisor, else a CPU worker named after host and pid.

    Kept in this module, not in the environment: the training processes are forked and
    report the same name, while processes started later (a test's, `trainyard run`'s) do
    not inherit it and name themselves."""
    global _current
    if _current is None:
        host = socket.gethostname()
        raw = os.environ.get(ENV)
        found = Identity(**json.loads(raw)) if raw else Identity(
            name=f"cpu0@{host}:{os.getpid()}", kind="cpu", device_index=None, device_name=cpu_name(),
            memory_bytes=host_memory(), host=host, pid=os.getpid())
        found.host, found.pid = found.host or host, found.pid or os.getpid()
        _current = found
    return _current
