"""One job's life on a worker: claim, load, train, persist, finish."""
import json
import logging
import os
import socket
import threading

import numpy as np
import torch
from safetensors.torch import save

from app.config import get_settings
from app.db import get_session_factory
from app.jobs import repository
from app.ml.errors import DataError, SpecError
from app.ml.spec import JobSpec
from app.models import Dataset, Job
from app.storage import dataset_key, get_store, preprocessing_key, weights_key
from worker.steps import Diverged
from worker.trainer import Hooks, Stopped, job_preprocessing, resolve_device, train

log = logging.getLogger(__name__)


def worker_id() -> str:
    return get_settings().worker_id or f"{socket.gethostname()}:{os.getpid()}"


class Heartbeat(threading.Thread):
    """Renews the job's lease while it trains, so the job is not taken for lost."""

    def __init__(self, job_id: str, owner: str):
        super().__init__(daemon=True, name=f"heartbeat-{job_id}")
        self.job_id, self.owner, self.stopped = job_id, owner, threading.Event()
        # Set when the lease was taken over: another worker owns the job now.
        self.lost = threading.Event()

    def run(self) -> None:
        settings = get_settings()
        while not self.stopped.wait(settings.heartbeat_seconds):
            try:
                with get_session_factory()() as s:
                    renewed = repository.renew_lease(db_session=s, job_id=self.job_id,
                                                     worker_id=self.owner,
                                                     lease_seconds=settings.lease_seconds)
                    s.commit()
                if not renewed:
                    self.lost.set()
                    return
            except Exception:
                log.exception("heartbeat for %s failed", self.job_id)


def _arrays(sha: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(get_store().path(dataset_key(sha)), allow_pickle=False) as npz:
        return npz["x"], npz["y"]


def _load(job_id: str) -> tuple[JobSpec, np.ndarray, np.ndarray, tuple | None]:
    """The spec, the training arrays, and the data.validation_dataset arrays when it names one."""
    with get_session_factory()() as s:
        job = s.get(Job, job_id)
        dataset = s.get(Dataset, job.dataset_id) if job.dataset_id else None
        if dataset is None:
            raise DataError("dataset", "the job's dataset was deleted before it could train")
        spec, sha = JobSpec.model_validate(job.spec), dataset.sha256
        val_id = spec.data.validation_dataset
        val = s.get(Dataset, val_id) if val_id else None
        if val_id and val is None:
            raise DataError("data.validation_dataset", "was deleted before the job could train")
        val_sha = val.sha256 if val else None
    return (spec, *_arrays(sha), _arrays(val_sha) if val_sha else None)


def _flush_hook(job_id: str, owner: str):
    def flush(points: list[dict], epoch: int, step: int) -> None:
        epochs = [p for p in points if p["kind"] == "epoch"]
        latest = {k: v for k, v in epochs[-1].items() if k != "kind"} if epochs else None
        with get_session_factory()() as s:
            repository.record_progress(db_session=s, job_id=job_id, worker_id=owner, points=points,
                                       epoch=epoch, step=step, latest=latest)
            s.commit()
    return flush


def _rewind_hook(job_id: str, owner: str):
    def rewind(step: int) -> None:
        with get_session_factory()() as s:
            repository.rewind(db_session=s, job_id=job_id, worker_id=owner, step=step,
                              reason="diverged; rolled back with a halved learning rate")
            s.commit()
    return rewind


def _finish(job_id: str, owner: str, status: str, error: str | None = None,
            weights_path: str | None = None) -> None:
    with get_session_factory()() as s:
        if not repository.finish(db_session=s, job_id=job_id, worker_id=owner, status=status,
                                 error=error, weights_path=weights_path):
            log.warning("job %s was no longer ours to finish", job_id)
        s.commit()


def _train_and_store(job_id: str, owner: str, heartbeat: Heartbeat) -> str:
    spec, x, y, validation = _load(job_id)
    device = resolve_device(spec.training.device)
    with get_session_factory()() as s:
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        repository.set_device(db_session=s, job_id=job_id, device=name)
        s.commit()
    hooks = Hooks(flush=_flush_hook(job_id, owner), should_stop=heartbeat.lost.is_set,
                  rewind=_rewind_hook(job_id, owner),
                  flush_seconds=get_settings().metrics_flush_seconds)
    result = train(spec, x, y, device, hooks, validation)
    # Predictions and rebuilt models must see inputs as training did: app.ml.data.apply_preprocessing.
    get_store().put(preprocessing_key(job_id), json.dumps(job_preprocessing(spec, x, y)).encode())
    state = {k: v.detach().contiguous() for k, v in result.model.state_dict().items()}
    key = weights_key(job_id)
    get_store().put(key, save(state, metadata={"job_id": job_id}))
    return key


def run_job(job_id: str) -> None:
    """Trains the job if this delivery wins the claim; otherwise does nothing."""
    owner, settings = worker_id(), get_settings()
    with get_session_factory()() as s:
        attempt = repository.claim(db_session=s, job_id=job_id, worker_id=owner,
                                   lease_seconds=settings.lease_seconds)
        if attempt and attempt > 1:
            repository.restart_progress(db_session=s, job_id=job_id)
        s.commit()
    if not attempt:
        log.info("job %s is not claimable (already taken or finished); skipping", job_id)
        return
    log.info("training job %s, attempt %d", job_id, attempt)
    heartbeat = Heartbeat(job_id, owner)
    heartbeat.start()
    try:
        key = _train_and_store(job_id, owner, heartbeat)
        _finish(job_id, owner, "succeeded", weights_path=key)
    except Stopped:
        log.warning("job %s: lease lost to another worker; stopping without finishing", job_id)
    except (SpecError, DataError, Diverged) as exc:
        _finish(job_id, owner, "failed", error=str(exc))
    except (torch.OutOfMemoryError, MemoryError) as exc:
        _finish(job_id, owner, "failed", error=f"out of memory: {exc}".strip())
    except Exception as exc:
        log.exception("job %s failed", job_id)
        _finish(job_id, owner, "failed", error=f"{type(exc).__name__}: {exc}")
    finally:
        heartbeat.stopped.set()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
