"""The broker may deliver a message twice; the job still trains once."""
from app.config import Settings
from app.queue import TRAIN_TASK, make_celery
from tests.e2e.helpers import blobs, mlp_spec, upload_npz, wait_for


def test_duplicate_delivery_trains_once(stack, api):
    x, y = blobs(64)
    ds = upload_npz(api, x, y)
    job = api.post("/v1/jobs", json=mlp_spec(ds["id"], epochs=3)).json()
    settings = Settings(_env_file=None, **{k.lower(): v for k, v in stack.env.items()
                                           if k in ("DATA_DIR", "BROKER_URL", "QUEUE_NAME")})
    producer = make_celery(settings)
    for _ in range(3):
        producer.send_task(TRAIN_TASK, args=[job["id"]], queue=settings.queue_for("cpu"))
    done = wait_for(api, job["id"])
    assert done["status"] == "succeeded" and done["attempts"] == 1
    history = api.get(f"/v1/jobs/{job['id']}/metrics").json()
    steps = [p["step"] for p in history["steps"]]
    assert steps == sorted(set(steps)) and len(history["epochs"]) == 3
    # The spare deliveries are consumed and do nothing.
    again = wait_for(api, job["id"])
    assert again["attempts"] == 1 and again["finished_at"] == done["finished_at"]
