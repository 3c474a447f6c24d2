"""`trainyard run` (what `make run` starts) comes up on a fresh data folder and trains."""
import os
import re
import signal
import subprocess
import sys
import time

import httpx

from tests.e2e.helpers import blobs, mlp_spec, npz_bytes, wait_for
from tests.stack import ROOT, free_port


def test_run_migrates_prints_a_key_and_trains(tmp_path):
    port = free_port()
    env = {**os.environ, "DATA_DIR": str(tmp_path / "var"), "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"}
    env.pop("DATABASE_URL", None), env.pop("BROKER_URL", None)
    log = tmp_path / "run.log"
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "run", "--port", str(port)], cwd=ROOT,
                            env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        key, deadline = None, time.monotonic() + 90
        while time.monotonic() < deadline and key is None:
            found = re.search(r"TRAINYARD_API_KEY=(ty_\S+)", log.read_text())
            key = found.group(1) if found else None
            time.sleep(0.2)
        assert key, log.read_text()
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}",
                           headers={"Authorization": f"Bearer {key}"}, timeout=30)
        while time.monotonic() < deadline:
            try:
                if api.get("/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        x, y = blobs(48)
        ds = api.post("/v1/datasets", files={"file": ("d.npz", npz_bytes(x=x, y=y))}).json()
        job = wait_for(api, api.post("/v1/jobs", json=mlp_spec(ds["id"], epochs=2)).json()["id"])
        assert job["status"] == "succeeded", log.read_text()
        assert (tmp_path / "var" / "trainyard.db").exists()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            # Every process still there prints each thread's stack (PYTHONFAULTHANDLER) and
            # aborts: the failure then says where it hung.
            for sig, pause in ((signal.SIGABRT, 2), (signal.SIGKILL, 0)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                time.sleep(pause)
            raise AssertionError("trainyard run did not stop on SIGTERM:\n" + log.read_text())
