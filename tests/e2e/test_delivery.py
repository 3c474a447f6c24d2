"""The broker may deliver a message twice; the job still trains once."""
from app.config import Settings
from app.queue import TRAIN_TASK, make_celery
from tests.e2e.helpers import (blobs, dropped, mlp_spec, not_claimable, running_events, upload_npz,
                               wait_for, wait_for_worker_log)

SPARES = 2


def test_duplicate_delivery_trains_once(stack, api):
    x, y = blobs(64)
    ds = upload_npz(api, x, y)
    job = api.post("/v1/jobs", json=mlp_spec(ds["id"], epochs=3)).json()
    settings = Settings(_env_file=None, **{k.lower(): v for k, v in stack.env.items()
                                           if k in ("DATA_DIR", "BROKER_URL", "QUEUE_NAME")})
    producer = make_celery(settings)
    for _ in range(SPARES):  # with POST's own message: three deliveries of one job
        producer.send_task(TRAIN_TASK, args=[job["id"]], queue=settings.queue_for("cpu"))
    done = wait_for(api, job["id"])
    assert done["status"] == "succeeded" and done["attempts"] == 1
    history = api.get(f"/v1/jobs/{job['id']}/metrics").json()
    steps = [p["step"] for p in history["steps"]]
    assert steps == sorted(set(steps)) and len(history["epochs"]) == 3

    # Until every delivery was received: each trained the job, or was dropped before the
    # training process (worker/duplicates.py) or found the job not claimable there
    # (worker/runner.py), so whatever a spare did is in the database now.
    wait_for_worker_log(stack, f"training job {job['id']},", dropped(job["id"]), not_claimable(job["id"]),
                        count=1 + SPARES)
    # The spares arrived after the job was claimed (a worker holds one message at a time):
    # the main process recognised both, and no training process spent time on them.
    assert stack.worker_log_count(dropped(job["id"])) == SPARES, stack.logs()
    assert stack.worker_log_count(not_claimable(job["id"])) == 0, stack.logs()
    again = api.get(f"/v1/jobs/{job['id']}").json()
    assert again["status"] == "succeeded" and again["attempts"] == 1
    assert again["finished_at"] == done["finished_at"] and again["started_at"] == done["started_at"]
    assert [a["attempt"] for a in again["attempt_history"]] == [1]
    assert [e["attempt"] for e in running_events(api, job["id"])] == [1]
    assert api.get(f"/v1/jobs/{job['id']}/metrics").json() == history
