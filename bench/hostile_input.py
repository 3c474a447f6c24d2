"""Hostile uploads against a real API process at the default limits: time to the answer, and
the API's peak memory (VmHWM, the kernel's high-water mark of its resident set) after each.

Cases (issue 14): a zip bomb (a 3.1 MB .npz of 805,306,368 float32 zeros), a 200 MB JSON
body (with a Content-Length, and chunked without one), a CSV header of 1,000,000 columns,
and a 100 MB CSV (under the 10 GiB MAX_UPLOAD_BYTES since issue 19, which streams uploads to
disk; the case was once the largest upload let through). The baseline in the same run is a small valid upload; times are also given as ratios to it.

    python bench/hostile_input.py   # about a minute; builds the bomb once under /tmp
"""
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._stack import deployment  # noqa: E402

BOMB = Path("/tmp/trainyard-bench-bomb.npz")
ZEROS = 805_306_368  # float32s: 3.2 GB unpacked


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def zip_bomb() -> bytes:
    if not BOMB.exists():
        columns = 768
        with zipfile.ZipFile(BOMB, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            with archive.open("x.npy", "w", force_zip64=True) as member:
                header = {"descr": "<f4", "fortran_order": False, "shape": (ZEROS // columns, columns)}
                np.lib.format.write_array_header_1_0(member, header)
                block = bytes(4 * columns * 4096)
                for _ in range(ZEROS // columns // 4096):
                    member.write(block)
            with archive.open("y.npy", "w") as member:
                np.lib.format.write_array(member, np.zeros(ZEROS // columns, dtype=np.int64))
    return BOMB.read_bytes()


def chunked(body: bytes):
    for i in range(0, len(body), 1 << 20):
        yield body[i:i + (1 << 20)]


def cases() -> list[tuple[str, dict]]:
    rng = np.random.default_rng(0)
    small = "a,b,label\n" + "".join(f"{a:.4f},{b:.4f},{int(a > 0)}\n" for a, b in rng.normal(size=(200, 2)))
    big_json = b'{"x": [' + b"[1.0]," * (200 * 2**20 // 6) + b'[1.0]], "y": [1]}'
    # the largest JSON body let through: MAX_INLINE_ROWS rows as wide as MAX_JSON_BYTES allows
    width = (32 * 2**20 - 100_000) // 10_000 // 6
    widest = b'{"x": [' + b",".join([b"[" + b"1.234," * (width - 1) + b"1.234]"] * 10_000) + \
        b'], "y": [' + b",".join([b"1"] * 10_000) + b"]}"
    wide = ",".join(f"c{i}" for i in range(1_000_000)).encode() + b"\n" + b"1," * 999_999 + b"1\n"
    row = b"0.123456,0.654321,1\n"
    largest_csv = b"a,b,label\n" + row * ((100 * 2**20 - 200_000) // len(row))
    bomb = zip_bomb()
    return [
        ("baseline: a 200-row CSV", {"files": {"file": ("s.csv", small.encode())}, "data": {"target": "label"}}),
        (f"zip bomb ({len(bomb) / 1e6:.1f} MB .npz, 3.2 GB unpacked)", {"files": {"file": ("b.npz", bomb)}}),
        (f"JSON body of {len(big_json) / 1e6:.0f} MB, Content-Length", {"content": big_json,
                                                                          "headers": {"Content-Type": "application/json"}}),
        (f"JSON body of {len(big_json) / 1e6:.0f} MB, chunked", {"content": chunked(big_json),
                                                                   "headers": {"Content-Type": "application/json"}}),
        (f"JSON body of {len(widest) / 1e6:.1f} MB, 10,000 rows of {width}", {
            "content": widest, "headers": {"Content-Type": "application/json"}}),
        (f"CSV header of 1,000,000 columns ({len(wide) / 1e6:.1f} MB)", {"files": {"file": ("w.csv", wide)},
                                                                          "data": {"target": "c0"}}),
        (f"CSV of {len(largest_csv) / 1e6:.0f} MB", {"files": {"file": ("l.csv", largest_csv)},
                                                                             "data": {"target": "label"}}),
    ]


def main() -> None:
    requests = cases()
    with deployment("embedded") as stack:
        key = stack.new_key("bench-hostile")
        with stack.client(key) as api:
            api.timeout = 600
            pid = stack.api.pid
            print(f"API at start: peak RSS {peak_rss(pid) / 2**20:.0f} MiB")
            print(f"{'request':58} {'answer':>6} {'seconds':>8} {'x baseline':>10} {'API peak RSS':>13}")
            base = None
            for label, kwargs in requests:
                start = time.perf_counter()
                r = api.post("/v1/datasets", **kwargs)
                took = time.perf_counter() - start
                base = base or took
                field = (r.json().get("errors") or [{}])[0].get("field", "") if r.status_code >= 400 else ""
                print(f"{label:58} {r.status_code:>6} {took:8.2f} {took / base:10.1f} "
                      f"{peak_rss(pid) / 2**20:10.0f} MiB  {field}")


if __name__ == "__main__":
    main()
