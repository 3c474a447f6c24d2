"""The Python client's resumable upload: a large file sent in parts through /v1/uploads, with a
progress bar on stderr. A failed part is retried with backoff; after a dropped connection or a
killed process, running the same upload again sends only the parts the server does not have.

Which upload to resume is kept in a small state file per (server, file path, size, mtime) under
$XDG_CACHE_HOME/trainyard/uploads/ (~/.cache/...): a file changed since is uploaded afresh. The
state file goes once the dataset is made."""
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from app.client import ServerUnreachable, TrainyardError

if TYPE_CHECKING:
    from app.client import Client

# Files larger than this go in parts (Datasets.upload); smaller ones in one request.
THRESHOLD_BYTES = 64 * 2**20
# Answers worth asking again: the server or a proxy in trouble, over a rate, or a part damaged on the way.
RETRY_STATUSES = {408, 429, 500, 502, 503, 504}
CHECKSUM_FIELDS = {"x-trainyard-sha256", "Content-MD5"}
T = TypeVar("T")


def state_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "trainyard" / "uploads"


def state_file(base_url: str, path: Path) -> Path:
    """The file naming the upload in progress of this file (as it is now) to this server."""
    stat = path.stat()
    key = f"{base_url}\n{path.resolve()}\n{stat.st_size}\n{stat.st_mtime_ns}"
    return state_dir() / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"


def upload_in_parts(client: "Client", path: str | Path, *, target: str | None = None, name: str | None = None,
                    progress: bool | None = None, retries: int = 5, backoff: float = 0.5) -> dict:
    """Uploads ``path`` in parts, resuming an earlier upload of the same file; returns the dataset."""
    path = Path(path)
    state = state_file(str(client.http.base_url), path)
    retry = _Retry(retries, backoff)
    upload = _resume(client, state, retry) or _open(client, path, target, name, state, retry)
    _send_missing(client, path, upload, retry, progress=sys.stderr.isatty() if progress is None else progress)
    body = {k: v for k, v in {"target": target, "name": name}.items() if v}
    try:
        dataset = retry(lambda: client.request("POST", f"/v1/uploads/{upload['id']}/complete",
                                               json=body or None).json())
    except ServerUnreachable as exc:
        raise _interrupted(exc, upload, "all parts sent") from exc
    state.unlink(missing_ok=True)
    return dataset


class _Retry:
    """Calls a request again after a dropped connection or a retryable answer, waiting longer each time."""

    def __init__(self, retries: int, backoff: float):
        self.retries, self.backoff = retries, backoff

    def __call__(self, send: Callable[[], T]) -> T:
        for attempt in range(self.retries + 1):
            try:
                return send()
            except TrainyardError as exc:
                damaged = any(e.get("field") in CHECKSUM_FIELDS for e in exc.errors)
                retryable = isinstance(exc, ServerUnreachable) or exc.status in RETRY_STATUSES or damaged
                if not retryable or attempt == self.retries:
                    raise
                time.sleep(min(self.backoff * 2 ** attempt, 30))
        raise AssertionError("unreachable")


def _resume(client: "Client", state: Path, retry: _Retry) -> dict | None:
    """The upload the state file names, as the server has it now; None when there is none to resume."""
    try:
        upload_id = json.loads(state.read_text())["upload_id"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        upload = retry(lambda: client.request("GET", f"/v1/uploads/{upload_id}").json())
    except TrainyardError as exc:
        if isinstance(exc, ServerUnreachable) or exc.status != 404:
            raise
        return None  # expired, aborted, or another tenant's key: start afresh
    return upload  # completed already: nothing is missing, and complete answers its dataset


def _open(client: "Client", path: Path, target, name, state: Path, retry: _Retry) -> dict:
    body = {"filename": path.name, "size": path.stat().st_size, "target": target, "name": name}
    upload = retry(lambda: client.request("POST", "/v1/uploads", json={k: v for k, v in body.items() if v}).json())
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"upload_id": upload["id"], "path": str(path.resolve())}))
    return upload


def _send_missing(client: "Client", path: Path, upload: dict, retry: _Retry, *, progress: bool) -> None:
    """Sends the parts the server lacks, in order, each with its SHA-256 for the server to check."""
    part_size, size = upload["part_size"], upload["size"]
    with _bar(progress, path.name, size, upload["received_bytes"]) as advance, path.open("rb") as f:
        for n in upload["missing"]:
            f.seek((n - 1) * part_size)
            data = f.read(min(part_size, size - (n - 1) * part_size))
            headers = {"Content-Type": "application/octet-stream",
                       "x-trainyard-sha256": hashlib.sha256(data).hexdigest()}
            url = f"/v1/uploads/{upload['id']}/parts/{n}"
            try:
                retry(lambda: client.request("PUT", url, content=data, headers=headers))
            except ServerUnreachable as exc:
                raise _interrupted(exc, upload, f"part {n} of {upload['parts_expected']} not sent") from exc
            advance(len(data))


def _interrupted(exc: ServerUnreachable, upload: dict, where: str) -> ServerUnreachable:
    return ServerUnreachable(None, f"{exc.detail}; upload {upload['id']} stopped ({where}): run the same "
                                   "upload again to resume it", exc.request)


class _bar:
    """A rich progress bar of bytes on stderr (or nothing); ``advance(n)`` moves it on."""

    def __init__(self, shown: bool, label: str, total: int, done: int):
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, \
            TransferSpeedColumn

        self.progress = Progress(TextColumn("upload [bold]{task.description}"), BarColumn(), DownloadColumn(),
                                 TransferSpeedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                                 disable=not shown)
        self.task = self.progress.add_task(label, total=total, completed=done)

    def __enter__(self):
        self.progress.start()
        return lambda n: self.progress.advance(self.task, n)

    def __exit__(self, *exc):
        self.progress.stop()
        return False
