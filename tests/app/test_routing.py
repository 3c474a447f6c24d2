"""Which queue a job waits in, and the reason a waiting job shows (app/workers/routing.py)."""
from datetime import timedelta

import pytest
from sqlalchemy.orm import sessionmaker

from app.db import make_engine
from app.migrate import upgrade
from app.ml.spec import JobSpec
from app.models import Job, Tenant, Worker
from app.models.base import utcnow
from app.workers import repository, routing, service


@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    upgrade(url)
    engine = make_engine(url)
    with sessionmaker(bind=engine, expire_on_commit=False)() as session:
        session.add(Tenant(id="t1", name="t1"))
        session.flush()
        yield session
    engine.dispose()


def spec(**training) -> JobSpec:
    return JobSpec.model_validate({"dataset": "builtin:iris", "model": {"layers": [{"type": "linear", "out_features": 3}]},
                                   "loss": {"type": "cross_entropy"}, "optimizer": {"type": "sgd", "lr": 0.1},
                                   "training": training})


def add_worker(db, name: str, kind: str, age_s: float = 0, status: str = "online") -> None:
    repository.register(db_session=db, worker=Worker(name=name, host="h", pid=1, kind=kind, device_name="x",
                                                       queue=f"trainyard.{kind}"))
    db.flush()
    db.get(Worker, name).heartbeat_at = utcnow() - timedelta(seconds=age_s)
    db.get(Worker, name).status = status
    db.flush()


def add_job(db, job_id: str, queue: str, device: str = "auto", status: str = "queued", age_s: float = 0,
            **training) -> Job:
    job = Job(id=job_id, tenant_id="t1", status=status,
              spec=spec(device=device, **training).model_dump(mode="json"),
              input_shape=[4], parameter_count=15, queue=queue, created_at=utcnow() - timedelta(seconds=age_s))
    db.add(job)
    db.flush()
    return job


def test_cuda_always_waits_for_a_gpu_and_cpu_for_a_cpu(db):
    assert routing.route(db_session=db, spec=spec(device="cuda")) == "gpu"
    add_worker(db, "gpu0@h", "gpu")
    assert routing.route(db_session=db, spec=spec(device="cpu")) == "cpu"


def test_mixed_precision_waits_for_a_gpu(db):
    assert routing.route(db_session=db, spec=spec(precision="bf16")) == "gpu"
    assert routing.route(db_session=db, spec=spec(device="auto", precision="fp16")) == "gpu"
    add_job(db, "job_bf16", "gpu", device="auto", precision="bf16")
    add_worker(db, "cpu0@h", "cpu")  # a resend keeps it waiting for a GPU
    assert routing.queues_for_resend(db_session=db, job_ids=["job_bf16"]) == [("job_bf16", "gpu")]


def test_auto_goes_to_a_gpu_only_while_one_is_online(db):
    assert routing.route(db_session=db, spec=spec(device="auto")) == "cpu"
    add_worker(db, "gpu0@h", "gpu", age_s=60)  # heartbeat too old: offline
    assert routing.route(db_session=db, spec=spec(device="auto")) == "cpu"
    add_worker(db, "gpu1@h", "gpu", status="draining")  # shutting down: takes no new jobs
    assert routing.route(db_session=db, spec=spec(device="auto")) == "cpu"
    add_worker(db, "gpu2@h", "gpu")
    assert routing.route(db_session=db, spec=spec(device="auto")) == "gpu"


def test_waiting_reason_says_what_the_job_waits_for(db):
    first = add_job(db, "job_1", "gpu", device="cuda", age_s=5)
    assert routing.waiting_reason(db_session=db, job=first) == "waiting: no GPU worker online"
    second = add_job(db, "job_2", "gpu", device="cuda")
    add_worker(db, "gpu0@h", "gpu")
    assert routing.waiting_reason(db_session=db, job=first) == "waiting for 1 GPU worker to take it"
    assert routing.waiting_reason(db_session=db, job=second) == "waiting: 1 job ahead of it for 1 GPU worker"
    add_worker(db, "gpu1@h", "gpu")
    assert routing.waiting_reason(db_session=db, job=second) == "waiting: 1 job ahead of it for 2 GPU workers"
    first.status = "running"
    assert routing.waiting_reason(db_session=db, job=first) is None
    cpu_job = add_job(db, "job_3", "cpu", device="cpu")
    assert routing.waiting_reason(db_session=db, job=cpu_job) == "waiting: no CPU worker online"


def test_a_resent_auto_job_is_routed_again(db):
    add_job(db, "job_auto", "gpu", device="auto")
    add_job(db, "job_cuda", "gpu", device="cuda")
    add_worker(db, "cpu0@h", "cpu")
    sends = routing.queues_for_resend(db_session=db, job_ids=["job_auto", "job_cuda"])
    assert sorted(sends) == [("job_auto", "cpu"), ("job_cuda", "gpu")]
    assert db.get(Job, "job_auto").queue == "cpu"
    add_worker(db, "gpu0@h", "gpu")
    assert routing.queues_for_resend(db_session=db, job_ids=["job_auto"]) == [("job_auto", "gpu")]


def test_registering_again_revives_a_stopped_worker_and_forgets_old_ones(db):
    add_worker(db, "gone@h", "cpu", age_s=8 * 24 * 3600)
    add_worker(db, "cpu0@h", "cpu")
    repository.stopped(db_session=db, name="cpu0@h")
    assert repository.online_count(db_session=db, kind="cpu", offline_seconds=20) == 0
    add_worker(db, "cpu0@h", "cpu")
    assert repository.online_count(db_session=db, kind="cpu", offline_seconds=20) == 1
    assert db.get(Worker, "gone@h") is None
    assert repository.heartbeat(db_session=db, name="cpu0@h") is True
    assert repository.heartbeat(db_session=db, name="never@h") is False


def add_gpus(db, name: str, devices: int) -> None:
    add_worker(db, name, "gpu")
    db.get(Worker, name).devices = devices
    db.flush()


def test_a_job_for_two_gpus_waits_for_a_worker_that_owns_two(db):
    """training.devices 2 on GPUs: the queue gpu2, which only workers with 2 or more GPUs consume; while
    none is online it waits with the reason, a one-GPU worker notwithstanding."""
    assert routing.route(db_session=db, spec=spec(device="cuda", devices=2)) == "gpu2"
    add_gpus(db, "gpu0@h", 1)
    assert routing.route(db_session=db, spec=spec(device="auto", devices=2)) == "cpu"  # no GPU worker has 2
    job = add_job(db, "j2", "gpu2", device="cuda", devices=2)
    assert routing.waiting_reason(db_session=db, job=job) == "waiting: no worker with 2 free GPUs"
    add_gpus(db, "gpu1+2@h", 2)
    assert routing.route(db_session=db, spec=spec(device="auto", devices=2)) == "gpu2"
    assert routing.waiting_reason(db_session=db, job=job) == "waiting for 1 GPU worker to take it"
    assert routing.queues_of("gpu", 2) == ["gpu", "gpu2"] and routing.queues_of("gpu", 1) == ["gpu"]
    assert routing.queues_of("cpu", 1) == ["cpu"]  # any CPU worker runs N gloo ranks
    one = add_job(db, "j1", "gpu", device="cuda")
    assert routing.waiting_reason(db_session=db, job=one) == "waiting for 2 GPU workers to take it"
    listed = service.listing(db_session=db, tenant_id="t1", offline_seconds=20, include_offline=False)
    assert {w.name: w.devices for w in listed.items} == {"gpu0@h": 1, "gpu1+2@h": 2}  # GET /v1/workers
