"""Dataset ingestion as a user with a real table sees it: upload speed and the API's peak memory.

Generates CSVs of 31 columns (30 float features and an integer label, like the issue's
100,000 x 31 file) at each size, uploads each through a real API process (uvicorn, over HTTP
with httpx, streaming the file from disk) and reports MB/s and the API process's peak
resident memory above its resting level (/proc/<pid>/status VmHWM, reset before each upload
by writing 5 to /proc/<pid>/clear_refs). Then, with a worker, the time from POST /v1/jobs to
the first training step on the largest dataset.

    .venv/bin/python bench/ingest.py                  # 10 MB, 100 MB, 1 GB, then time to first step
    .venv/bin/python bench/ingest.py --quick          # 10 MB only, no training (the smoke test)
    .venv/bin/python bench/ingest.py --code /tmp/before --sizes 10,100   # another checkout's API ("before")

The rows repeat every 10 MB (generating 1 GB of distinct text took minutes); the parse costs
the same. Figures: docs/benchmarks.md.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._stack import deployment  # noqa: E402
from tests.stack import PYTHON, free_port  # noqa: E402

MB = 1_000_000
CHUNK_BYTES = 10 * MB
SPEC = {"model": {"layers": [{"type": "linear", "out_features": 64}, {"type": "relu"},
                             {"type": "linear", "out_features": 3}]},
        "loss": {"type": "cross_entropy"}, "optimizer": {"type": "adam", "lr": 0.001},
        "training": {"epochs": 1, "batch_size": 1024, "seed": 0, "log_every_steps": 1, "validation_split": 0.0}}


def write_csv(path: Path, size: int) -> int:
    """A CSV of about ``size`` bytes; returns its rows."""
    rng = np.random.default_rng(0)
    block_rows = 25_000
    x, y = rng.normal(size=(block_rows, 30)).round(4), rng.integers(0, 3, block_rows)
    body = "".join(",".join(f"{v:.4f}" for v in row) + f",{t}\n" for row, t in zip(x, y)).encode()
    header = (",".join([*(f"f{i}" for i in range(30)), "label"]) + "\n").encode()
    rows, written = 0, len(header)
    with open(path, "wb") as f:
        f.write(header)
        while written < size:
            part = body if written + len(body) <= size else body[:body.rfind(b"\n", 0, size - written) + 1]
            if not part:
                break
            f.write(part)
            written += len(part)
            rows += part.count(b"\n")
    return rows


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def upload(url: str, key: str, path: Path) -> tuple[float, dict]:
    headers = {"Authorization": f"Bearer {key}"}
    with open(path, "rb") as f, httpx.Client(base_url=url, headers=headers, timeout=3600) as c:
        started = time.perf_counter()
        r = c.post("/v1/datasets", files={"file": (path.name, f)}, data={"target": "label"})
        seconds = time.perf_counter() - started
    r.raise_for_status()
    return seconds, r.json()


def measure(url: str, key: str, pid: int, path: Path) -> tuple[float, int, int, dict]:
    """(seconds, the API's RSS before, its peak RSS during, the dataset) for one upload."""
    resting = _status(pid, "VmRSS")
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
    seconds, ds = upload(url, key, path)
    return seconds, resting, _status(pid, "VmHWM"), ds


class Api:
    """An API process (migrated, no worker) run from ``code``: this checkout or another ("before")."""

    def __init__(self, code: Path, tmp: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "PYTHONPATH": str(code), "DATA_DIR": str(tmp / "data"),
                    "MAX_UPLOAD_BYTES": str(4 << 30), "MAX_DATASET_BYTES": str(4 << 30)}
        self.code = code
        self._run("migrate")
        self.proc = subprocess.Popen([PYTHON, "-m", "app.cli", "api", "--port", str(self.port)], cwd=code,
                                     env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(300):
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        self.key = self._run("keys", "create", "key-bench", "--tenant", "bench").strip().splitlines()[-1]

    def _run(self, *args: str) -> str:
        return subprocess.run([PYTHON, "-m", "app.cli", *args], cwd=self.code, env=self.env, check=True,
                              capture_output=True, text=True).stdout

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def upload_table(code: Path, files: list[tuple[int, Path]], tmp: Path) -> None:
    api = Api(code, tmp)
    try:
        warm = tmp / "warm.csv"
        write_csv(warm, 100_000)
        upload(api.url, api.key, warm)  # imports and first-use costs, before anything is measured
        print(f"{'file':>8} {'rows':>10} {'seconds':>8} {'MB/s':>7} {'API RSS before':>15} {'peak':>9} "
              f"{'growth':>10}")
        for size, path in files:
            seconds, before, peak, ds = measure(api.url, api.key, api.proc.pid, path)
            print(f"{size // MB:>6}MB {ds['rows']:>10,} {seconds:>8.2f} {path.stat().st_size / MB / seconds:>7.1f} "
                  f"{before / 2**20:>11.0f} MiB {peak / 2**20:>5.0f} MiB {(peak - before) / 2**20:>6.0f} MiB",
                  flush=True)
    finally:
        api.stop()


def first_step(path: Path, env: dict) -> None:
    """Seconds from POST /v1/jobs to the job's first step point, on a real API and worker."""
    with deployment("embedded", {"MAX_UPLOAD_BYTES": str(4 << 30), "MAX_DATASET_BYTES": str(4 << 30), **env}) as stack:
        key = stack.new_key("bench")
        _, ds = upload(stack.url, key, path)
        with stack.client(key) as api:
            plan = api.post("/v1/jobs", json={"dataset": ds["id"], **SPEC}, params={"dry_run": "true"}).json()
            started = time.perf_counter()
            job = api.post("/v1/jobs", json={"dataset": ds["id"], **SPEC}).json()
            job_url = f"/v1/jobs/{job['id']}"
            while not api.get(f"{job_url}/metrics").json()["steps"]:
                now = api.get(job_url).json()
                if now["status"] in ("failed", "cancelled"):
                    raise SystemExit(f"the job ended: {now}")
                time.sleep(0.1)
            seconds = time.perf_counter() - started
            api.post(f"{job_url}/cancel")
    print(f"time to first step, {path.stat().st_size // MB} MB dataset, {plan['data_path']}: {seconds:.1f} s "
          f"({plan['data_bytes'] / 2**20:.0f} MiB of arrays)", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="10 MB only, no training")
    p.add_argument("--sizes", default="10,100,1000", help="CSV sizes in MB, comma-separated")
    p.add_argument("--code", type=Path, default=ROOT, help="the checkout whose API uploads (default: this one)")
    p.add_argument("--no-train", action="store_true", help="skip the time to first step")
    args = p.parse_args()
    sizes = [10] if args.quick else [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="ty-ingest-") as tmp:
        tmp = Path(tmp)
        files = []
        for size in sizes:
            path = tmp / f"data-{size}mb.csv"
            write_csv(path, size * MB)
            files.append((size * MB, path))
        print(f"uploads through {args.code} ({os.cpu_count()} cores)", flush=True)
        upload_table(args.code.resolve(), files, tmp / "api")
        if not (args.quick or args.no_train):
            largest = files[-1][1]
            first_step(largest, {})
            first_step(largest, {"WORKER_MEMORY_BYTES": str(64 << 20)})


if __name__ == "__main__":
    main()
