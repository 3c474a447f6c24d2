"""`trainyard worker`: one Celery worker process per GPU, each pinned to its device, or CPU workers.

The supervising process never initializes CUDA: it probes the GPUs in a short-lived child
process and starts each worker as a fresh process with CUDA_VISIBLE_DEVICES set to its one
GPU. Each worker's training processes are forked from that worker, which has not touched
CUDA either, so each job opens its own CUDA context on its own device.
"""
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

from worker.identity import ENV, Identity, cpu_name, host_memory
from worker.threads import share

log = logging.getLogger(__name__)

# Run in a child process: what torch sees, without CUDA ever starting in this one.
PROBE = """
import json, os, torch
visible = os.environ.get("CUDA_VISIBLE_DEVICES")
ids = [v.strip() for v in visible.split(",")] if visible else None
gpus = []
if torch.cuda.is_available():
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        gpus.append({"index": i, "visible_id": ids[i] if ids else str(i), "name": p.name,
                     "memory_bytes": p.total_memory})
print(json.dumps(gpus))
"""


@dataclass
class Gpu:
    index: int  # as torch numbers it in this process (after any CUDA_VISIBLE_DEVICES)
    visible_id: str  # what the worker's CUDA_VISIBLE_DEVICES must say to see only this GPU
    name: str
    memory_bytes: int


@dataclass
class Planned:
    identity: Identity
    cuda_visible_devices: str  # "" for a CPU worker: it never sees a GPU


def probe_gpus() -> list[Gpu]:
    import torch  # importing torch does not initialize CUDA

    if torch.version.cuda is None:  # a CPU-only build of torch
        return []
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        log.warning("GPU probe failed; starting CPU workers only:\n%s", out.stderr[-2000:])
        return []
    return [Gpu(**g) for g in json.loads(out.stdout)]


class PlanError(ValueError):
    pass


def plan(gpus: list[Gpu], devices: list[int] | None, cpu: int | None,
         host: str | None = None, pid: int | None = None, threads: int | None = None,
         cores: int | None = None, gpus_per_worker: int = 1) -> list[Planned]:
    """The workers to start: every GPU by default, one CPU worker when there is none.

    Each GPU worker owns ``gpus_per_worker`` GPUs (consecutive ones of ``devices``), each gets
    ``threads`` torch threads, by default an equal share of the ``cores`` (worker/threads.py)."""
    host, pid = host or socket.gethostname(), pid or os.getpid()
    if devices is None and cpu is None:
        devices, cpu = [g.index for g in gpus], 0 if gpus else 1
    devices, cpu = devices or [], cpu or 0
    by_index = {g.index: g for g in gpus}
    missing = [d for d in devices if d not in by_index]
    if missing:
        seen = ", ".join(f"{g.index} ({g.name})" for g in gpus) or "none"
        raise PlanError(f"no GPU {', '.join(map(str, missing))} on this machine; GPUs torch sees: {seen}")
    if len(set(devices)) != len(devices):
        raise PlanError("--devices names a GPU twice; each GPU gets one worker")
    if cpu < 0 or (not devices and not cpu):
        raise PlanError("nothing to start: give --devices, or --cpu with at least 1")
    if gpus_per_worker < 1 or len(devices) % gpus_per_worker:
        raise PlanError(f"--gpus-per-worker {gpus_per_worker} does not divide the {len(devices)} GPUs "
                        "into whole workers")
    groups = [[by_index[d] for d in devices[i:i + gpus_per_worker]] for i in range(0, len(devices), gpus_per_worker)]
    planned = [_gpu_worker(group, host, pid) for group in groups]
    planned += [Planned(Identity(name=f"cpu{k}-{pid}@{host}", kind="cpu", device_index=None,
                                 device_name=cpu_name(), memory_bytes=host_memory(), host=host), "")
                for k in range(cpu)]
    if threads is not None and threads < 1:
        raise PlanError("--threads must be at least 1")
    for p in planned:
        p.identity.threads = threads or share(len(planned), cores)
    return planned


def _gpu_worker(group: list[Gpu], host: str, pid: int) -> Planned:
    """One worker owning the GPUs of ``group``: its CUDA_VISIBLE_DEVICES lists them all."""
    first, k = group[0], len(group)
    name = "+".join(str(g.index) for g in group)
    return Planned(Identity(name=f"gpu{name}-{pid}@{host}", kind="gpu", device_index=first.index,
                            device_name=first.name if k == 1 else f"{k} x {first.name}",
                            memory_bytes=first.memory_bytes, host=host, devices=k),
                   ",".join(g.visible_id for g in group))


def child_env(p: Planned) -> dict[str, str]:
    return {**os.environ, ENV: p.identity.to_env(), "CUDA_VISIBLE_DEVICES": p.cuda_visible_devices}


def supervise(planned: list[Planned], command: list[str]) -> int:
    """Runs one worker process per plan entry until SIGTERM/SIGINT, restarting any that dies.

    Shutdown forwards SIGTERM to every worker, each of which hands its running job back
    (worker/drain.py), and waits for them all.
    """
    procs: dict[int, subprocess.Popen] = {}
    restarts = [0.0] * len(planned)
    stopping = False

    def start(i: int) -> None:
        procs[i] = subprocess.Popen(command, env=child_env(planned[i]))
        log.info("started worker %s (pid %d)", planned[i].identity.name, procs[i].pid)

    def stop(signum, _frame):
        nonlocal stopping
        stopping = True
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for i in range(len(planned)):
        start(i)
    while not stopping:
        time.sleep(0.5)
        for i, proc in list(procs.items()):
            if proc.poll() is None or stopping:
                continue
            # A worker that died (OOM killer, a crash) is replaced; its job, if any, is
            # recovered by the reaper once its lease expires. Quick repeat deaths back off.
            wait = 1.0 if time.monotonic() - restarts[i] > 60 else 10.0
            log.warning("worker %s exited with %s; restarting in %.0f s",
                        planned[i].identity.name, proc.returncode, wait)
            until = time.monotonic() + wait
            while not stopping and time.monotonic() < until:
                time.sleep(0.1)
            restarts[i] = time.monotonic()
            if not stopping:
                start(i)
    for proc in procs.values():
        proc.wait()
    # A worker still starting when the SIGTERM came (importing, warming up) has no handler
    # for it yet and ends by the signal: that is the stop we asked for, not a failure.
    return 0 if all(p.returncode in (0, -signal.SIGTERM) for p in procs.values()) else 1
