"""What the artifact store costs per object size: the folder store against S3 (a moto server process).

    python bench/store.py [--sizes-mb 10 100]

For each size and store: put_file (an upload's or a worker's write), local_path cold (a
worker's first read of a dataset: the download into CACHE_DIR), local_path warm (every later
read: a cached, content-addressed copy, no request) and get (bytes into memory), in MB/s
(warm: microseconds). moto keeps objects in its process's memory over loopback HTTP, so its
figures show the client's and the protocol's cost, not a real store's network.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.filecache import LocalCache  # noqa: E402
from app.s3store import S3Store, make_client  # noqa: E402
from app.storage import ArtifactStore  # noqa: E402
from tests.s3server import CREDENTIALS, S3Server  # noqa: E402


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(store, source: Path, name: str) -> dict[str, float]:
    mb = source.stat().st_size / 1e6
    key = f"datasets/{name}"
    out = {"put_file MB/s": mb / timed(lambda: store.put_file(key, source))}
    out["local_path cold MB/s"] = mb / timed(lambda: store.local_path(key))
    out["local_path warm us"] = 1e6 * timed(lambda: store.local_path(key))
    out["get MB/s"] = mb / timed(lambda: store.get(key))
    store.delete(key)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[10, 100])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        server = S3Server(tmp / "moto.log")
        try:
            os.environ.update(CREDENTIALS)
            stores = {"file": ArtifactStore(tmp / "artifacts"),
                      "s3 (moto)": S3Store(server.bucket, "bench", LocalCache(tmp / "cache", 0),
                                           make_client(server.endpoint))}
            rows = []
            for size in args.sizes_mb:
                source = tmp / f"{size}mb.bin"
                source.write_bytes(os.urandom(size * 10**6))
                for kind, store in stores.items():
                    rows.append((size, kind, measure(store, source, f"{size}-{kind[:2]}")))
                source.unlink()
        finally:
            server.stop()
    columns = list(rows[0][2])
    print(f"{'MB':>5} {'store':<10} " + " ".join(f"{c:>21}" for c in columns))
    for size, kind, figures in rows:
        print(f"{size:>5} {kind:<10} " + " ".join(f"{figures[c]:>21.1f}" for c in columns))


if __name__ == "__main__":
    main()
