"""Time from a SIGKILLed training process to its job training again on a new process.

    python bench/recovery.py [--kills 3]

Starts an embedded deployment with a short lease (2 s; the reaper sweeps every 0.5 s),
kills the training process of a running job mid-epoch, and reports how long until the job
runs again (its second attempt) and the checkpoint it resumed from. With the default
LEASE_SECONDS=60 and REAPER_INTERVAL_SECONDS=15 detection takes up to 75 s instead.
"""
import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.helpers import blobs, mlp_spec, upload_npz, wait_for  # noqa: E402
from tests.e2e.test_worker_lost import FAST_REAPER, _training_child  # noqa: E402
from tests.stack import Stack  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack("recovery", Path(tmp), FAST_REAPER).start()
        try:
            with stack.client(stack.new_key("bench")) as api:
                x, y = blobs(200)
                ds = upload_npz(api, x, y)
                for _ in range(args.kills):
                    spec = mlp_spec(ds["id"], epochs=30, batch_size=2, checkpoint_every=3)
                    job = api.post("/v1/jobs", json=spec).json()
                    while api.get(f"/v1/jobs/{job['id']}").json()["progress"]["step"] < 500:
                        time.sleep(0.02)
                    os.kill(_training_child(stack.workers[0]), signal.SIGKILL)
                    killed = time.monotonic()
                    while (j := api.get(f"/v1/jobs/{job['id']}").json())["attempts"] < 2 \
                            or j["status"] != "running":
                        time.sleep(0.02)
                    print(f"killed at step >= 500: training again after {time.monotonic() - killed:.2f} s, "
                          f"resumed from checkpoint step {j['checkpoint_step']}")
                    wait_for(api, job["id"], timeout=120)
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
