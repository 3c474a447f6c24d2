"""The worker's puts while the store is down (a real moto server behind a closed gate): a
checkpoint is skipped, never raised, and the previous one stays whole; the final weights are
tried again until the store is back, or for STORE_RETRY_SECONDS, then the attempt is given up."""
import threading
import uuid

import pytest

from app.config import get_settings
from app.filecache import LocalCache
from app.s3store import S3Store, make_client
from tests.s3server import aws_env, s3  # noqa: F401 - fixtures
from worker import storing


@pytest.fixture
def store(s3, aws_env, tmp_path):  # noqa: F811
    return S3Store(s3.bucket, f"w-{uuid.uuid4().hex[:8]}", LocalCache(tmp_path, 0), make_client(s3.endpoint))


@pytest.fixture
def retry_seconds(monkeypatch):
    def set_to(seconds: float) -> None:
        monkeypatch.setenv("STORE_RETRY_SECONDS", str(seconds))
        get_settings.cache_clear()

    yield set_to
    get_settings.cache_clear()


def test_a_checkpoint_the_store_refuses_is_counted_and_the_previous_one_stays(s3, store):  # noqa: F811
    checkpoints = storing.Checkpoints("job_x")
    assert checkpoints.put(store, "jobs/x/checkpoint.pt", b"step 10", 10)
    s3.gate.close()
    try:
        assert not checkpoints.put(store, "jobs/x/checkpoint.pt", b"step 20", 20)
        assert not checkpoints.put(store, "jobs/x/checkpoint.pt", b"step 30", 30)
    finally:
        s3.gate.open()
    assert (checkpoints.failed, checkpoints.failing) == (2, 2)
    assert store.get("jobs/x/checkpoint.pt") == b"step 10"
    assert checkpoints.put(store, "jobs/x/checkpoint.pt", b"step 40", 40)
    assert (checkpoints.failed, checkpoints.failing) == (2, 0)
    assert store.get("jobs/x/checkpoint.pt") == b"step 40"


def test_the_weights_wait_for_the_store_to_come_back(s3, store, retry_seconds):  # noqa: F811
    retry_seconds(120)
    s3.gate.close()
    reopen = threading.Timer(1.5, s3.gate.open)
    reopen.start()
    try:
        storing.put_retrying(store, "jobs/x/weights.safetensors", b"weights", "weights")
    finally:
        reopen.join()
    assert store.get("jobs/x/weights.safetensors") == b"weights"


def test_the_weights_give_the_attempt_up_after_store_retry_seconds(s3, store, retry_seconds):  # noqa: F811
    retry_seconds(1)
    s3.gate.close()
    try:
        with pytest.raises(storing.StoreUnavailable, match="STORE_RETRY_SECONDS") as given_up:
            storing.put_retrying(store, "jobs/x/weights.safetensors", b"weights", "weights")
    finally:
        s3.gate.open()
    assert storing.unreachable(given_up.value) and not store.exists("jobs/x/weights.safetensors")
    assert not storing.unreachable(ValueError("a job's own fault"))


def test_a_worker_that_lost_the_job_writes_no_checkpoint(tmp_path, monkeypatch):
    """Its heartbeat found the lease taken over: the new owner's checkpoint must not be overwritten."""
    from app.storage import checkpoint_key, get_store
    from worker.runner import JobRun

    monkeypatch.setenv("ARTIFACT_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        store = get_store()
        store.put(checkpoint_key("job_lost"), b"the new owner's, step 40")
        lease_lost = threading.Event()
        run = JobRun("job_lost", "worker-a", lease_lost)
        lease_lost.set()  # what the Heartbeat sets when the lease was taken over
        run.checkpoint(b"worker a's, step 30", 30)
        assert store.get(checkpoint_key("job_lost")) == b"the new owner's, step 40"
        assert run.checkpoints.failed == 0  # skipped, not a store failure
    finally:
        get_settings.cache_clear()
