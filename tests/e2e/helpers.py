"""Small steps the end-to-end tests share: data, uploads, waiting for a job."""
import io
import subprocess
import time

import httpx
import numpy as np

from app.client import parse_sse

TERMINAL = ("succeeded", "failed", "cancelled")


def blobs(rows: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three separable classes in 4-D."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, rows)
    x = rng.normal(size=(rows, 4)).astype(np.float32) + y[:, None] * 2.0
    return x.astype(np.float32), y.astype(np.int64)


def csv_bytes(x: np.ndarray, y, header=("a", "b", "c", "d"), target="label") -> bytes:
    lines = [",".join([*header, target])]
    lines += [",".join([*(f"{v:.6f}" for v in row), str(t)]) for row, t in zip(x, y)]
    return ("\n".join(lines) + "\n").encode()


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def upload_npz(api: httpx.Client, x: np.ndarray, y: np.ndarray, name: str = "data.npz") -> dict:
    r = api.post("/v1/datasets", files={"file": (name, npz_bytes(x=x, y=y))})
    assert r.status_code == 201, r.text
    return r.json()


def mlp_spec(dataset: str, **training) -> dict:
    return {
        "dataset": dataset,
        "model": {"layers": [{"type": "linear", "out_features": 16}, {"type": "relu"},
                             {"type": "linear", "out_features": 3}]},
        "loss": {"type": "cross_entropy"},
        "optimizer": {"type": "sgd", "lr": 0.1, "momentum": 0.9},
        "training": {"epochs": 5, "batch_size": 16, "validation_split": 0.25, "seed": 3,
                     "log_every_steps": 2, **training},
    }


def spec_for(dataset, outputs=3, loss="cross_entropy", data=None, flatten=False, **training) -> dict:
    """A small MLP on ``dataset`` (an id, a builtin's name or its parameters), Adam."""
    layers = [{"type": "flatten"}] if flatten else []
    layers += [{"type": "linear", "out_features": 16}, {"type": "relu"},
               {"type": "linear", "out_features": outputs}]
    return {"dataset": dataset, "model": {"layers": layers}, "loss": {"type": loss},
            "optimizer": {"type": "adam", "lr": 0.01}, "data": data or {},
            "training": {"epochs": 5, "batch_size": 16, "seed": 1, **training}}


def wait_for(api: httpx.Client, job_id: str, statuses=TERMINAL, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not reach {statuses}: {job}")


def wait_for_worker_log(stack, *texts: str, count: int = 1, timeout: float = 60) -> None:
    """Until the stack's worker logs hold ``texts`` ``count`` times in all."""
    deadline = time.monotonic() + timeout
    while sum(stack.worker_log_count(text) for text in texts) < count:
        assert time.monotonic() < deadline, f"the workers never logged {texts} {count} times:\n{stack.logs()}"
        time.sleep(0.1)


def not_claimable(job_id: str) -> str:
    """What a training process logs when a delivery finds the job already taken or ended (worker/runner.py)."""
    return f"job {job_id} is not claimable"


def dropped(job_id: str) -> str:
    """What a worker's main process logs when it drops a delivery whose job is not waiting
    (worker/duplicates.py), before it reaches the training process."""
    return f"job {job_id} is not waiting; its message was dropped"


def running_events(api: httpx.Client, job_id: str) -> list[dict]:
    """The `running` status events of an ended job, replayed from its event log."""
    r = api.get(f"/v1/jobs/{job_id}/events")
    assert r.status_code == 200, r.text
    return [e.data for e in parse_sse(iter(r.text.splitlines()))
            if e.event == "status" and e.data["status"] == "running"]


def errors_for(response: httpx.Response) -> dict[str, str]:
    """field -> message from a 4xx body."""
    return {e["field"]: e["message"] for e in response.json()["errors"]}


def diverging_spec(api: httpx.Client) -> dict:
    """A job that fails at run time: plain SGD with a rate that makes the loss overflow."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(64, 3)).astype(np.float32) * 10
    ds = upload_npz(api, x, (x.sum(axis=1) * 100).astype(np.float32))
    return {"dataset": ds["id"], "model": {"layers": [{"type": "linear", "out_features": 1}]},
            "loss": {"type": "mse"}, "optimizer": {"type": "sgd", "lr": 10.0},
            "training": {"epochs": 50, "batch_size": 8, "log_every_steps": 1}}


def training_child(worker: subprocess.Popen) -> int:
    """The pool process that runs the worker's jobs (the worker's only child)."""
    out = subprocess.run(["pgrep", "-P", str(worker.pid)], capture_output=True, text=True)
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 1, pids
    return pids[0]
