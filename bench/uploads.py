"""Resumable uploads (/v1/uploads) against a real API process: MB/s of the parts and of the
complete, and the API's peak memory (VmHWM) after each phase, beside a one-shot POST /v1/datasets
of the same CSV.

The parts' phase is this module's own (app/uploads/): the API streams each part to disk, so
its peak memory should not grow with the file. The complete's parse is app.datasets'
ingest_file (issue 19's ingest part), measured here as it is on this branch.

    python bench/uploads.py [--mb 200] [--part-mib 16]   # about a minute at 200 MB
    python bench/uploads.py --mb 1000 --parts-only       # the parts of a 1 GB file alone
"""
import argparse
import hashlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.hostile_input import peak_rss  # noqa: E402
from tests.stack import Stack  # noqa: E402


def write_csv(path: Path, megabytes: int) -> None:
    rng = np.random.default_rng(0)
    rows = megabytes * 10**6 // 100  # about 100 bytes a row: 10 features and a label
    with path.open("w") as f:
        f.write(",".join(f"f{i}" for i in range(10)) + ",label\n")
        for start in range(0, rows, 50_000):
            x = rng.normal(size=(min(50_000, rows - start), 10))
            lines = "\n".join(",".join(f"{v:.5f}" for v in row) + f",{int(row[0] > 0)}" for row in x)
            f.write(lines + "\n")


def send_parts(api, path: Path) -> dict:
    size = path.stat().st_size
    up = api.post("/v1/uploads", json={"filename": path.name, "size": size, "target": "label"}).json()
    with path.open("rb") as f:
        for n in up["missing"]:
            data = f.read(up["part_size"])
            r = api.put(f"/v1/uploads/{up['id']}/parts/{n}", content=data,
                        headers={"x-trainyard-sha256": hashlib.sha256(data).hexdigest()})
            r.raise_for_status()
    return up


def timed(step):
    start = time.perf_counter()
    out = step()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=200, help="the CSV's size in MB")
    parser.add_argument("--part-mib", type=int, default=16, help="UPLOAD_PART_BYTES in MiB")
    parser.add_argument("--parts-only", action="store_true", help="measure the parts alone (no parse)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ty-bench-uploads-"))
    csv = tmp / "data.csv"
    write_csv(csv, args.mb)
    mb = csv.stat().st_size / 1e6
    stack = Stack("bench-uploads", tmp / "stack", {"UPLOAD_PART_BYTES": str(args.part_mib * 2**20),
                                                    "MAX_UPLOAD_BYTES": str(4 * 2**30),
                                                    "MAX_DATASET_BYTES": str(8 * 2**30)})
    try:
        stack.start(worker=False)
        pid = stack.api.pid
        with stack.client(stack.new_key("bench-uploads")) as api:
            api.timeout = 900
            rest = peak_rss(pid)
            print(f"{mb:.0f} MB CSV, parts of {args.part_mib} MiB; API at rest: peak RSS {rest / 2**20:.0f} MiB")
            print(f"{'phase':34} {'seconds':>8} {'MB/s':>8} {'API peak RSS':>13} {'growth':>9}")
            rows = [("resumable: parts (create + PUTs)", lambda: send_parts(api, csv))]
            up, took = timed(rows[0][1])
            report(rows[0][0], took, mb, pid, rest)
            if args.parts_only:
                return
            r, took = timed(lambda: api.post(f"/v1/uploads/{up['id']}/complete"))
            assert r.status_code == 201, r.text
            report("resumable: complete (ingest)", took, mb, pid, rest)
            r, took = timed(lambda: api.post("/v1/datasets", files={"file": (csv.name, csv.open("rb"))},
                                             data={"target": "label"}))
            assert r.status_code == 201, r.text
            report("one-shot POST /v1/datasets", took, mb, pid, rest)
    finally:
        stack.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def report(label: str, seconds: float, mb: float, pid: int, rest: int) -> None:
    peak = peak_rss(pid)
    print(f"{label:34} {seconds:8.2f} {mb / seconds:8.1f} {peak / 2**20:10.0f} MiB {(peak - rest) / 2**20:6.0f} MiB")


if __name__ == "__main__":
    main()
