"""The Python client's resources beside the jobs (``Client(...).datasets``, ``.jobs``, ``.studies``,
``.keys``): their own module, app/client.py being long."""
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.client import Client, Event

TERMINAL = ("succeeded", "failed", "cancelled", "pruned")
CURVE_COLUMNS = ("variant", "epoch", "x", "mean", "std", "min", "max", "n")


def _poll(read, *, ended, what: str, timeout: float | None, poll_seconds: float) -> dict:
    """Calls ``read()`` until ``ended(result)``; TimeoutError after ``timeout`` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        current = read()
        if ended(current):
            return current
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"{what} is still {current['status']} after {timeout} s")
        time.sleep(poll_seconds)


def curve_rows(curves: dict) -> list[dict]:
    """GET /v1/studies/{id}/curves's columns as rows: one per variant and epoch (CURVE_COLUMNS)."""
    return [{"variant": c["variant"], **{name: c[name][i] for name in CURVE_COLUMNS[1:]}}
            for c in curves["variants"] for i in range(len(c["epoch"]))]


def _frame(rows: list[dict], columns=None):
    """A pandas DataFrame (pandas is optional: only this needs it)."""
    try:
        import pandas
    except ImportError as exc:
        raise ImportError("as_frame=True needs pandas: pip install pandas") from exc
    return pandas.DataFrame(rows, columns=columns)


class Datasets:
    def __init__(self, client: "Client"):
        self.client = client

    def upload(self, path: str | Path, *, target: str | None = None, name: str | None = None,
               resumable: bool | None = None, progress: bool | None = None, retries: int = 5) -> dict:
        """Uploads a .csv (``target`` names the column(s) to predict) or .npz file.

        Over 64 MiB (or with ``resumable=True``) it goes in parts with a progress bar (``progress``:
        default when stderr is a terminal), and uploading it again after an interruption sends only
        the missing parts; a failed part is tried ``retries`` more times (app/client_uploads.py)."""
        path = Path(path)
        from app.client_uploads import THRESHOLD_BYTES, upload_in_parts

        if resumable or (resumable is None and path.stat().st_size > THRESHOLD_BYTES):
            return upload_in_parts(self.client, path, target=target, name=name, progress=progress,
                                   retries=retries)
        form = {k: v for k, v in {"target": target, "name": name}.items() if v}
        with path.open("rb") as f:
            return self.client.request("POST", "/v1/datasets", files={"file": (path.name, f)},
                                       data=form).json()

    def get(self, dataset_id: str) -> dict:
        return self.client.request("GET", f"/v1/datasets/{dataset_id}").json()

    def list(self, *, limit: int = 50, offset: int = 0) -> dict:
        return self.client.request("GET", "/v1/datasets",
                                   params={"limit": limit, "offset": offset}).json()


def _list_params(*, status, label, name, name_prefix, limit, offset, **more) -> dict:
    """A list's query: ``label`` is {"key": "value"}, or "key:value" strings (all must match)."""
    labels = [f"{k}:{v}" for k, v in label.items()] if isinstance(label, dict) else \
        [label] if isinstance(label, str) else list(label or [])
    given = {"status": status, "name": name, "name_prefix": name_prefix, **more}
    return {"limit": limit, "offset": offset, **{k: v for k, v in given.items() if v is not None},
            **({"label": labels} if labels else {})}


class Jobs:
    """Jobs (/v1/jobs): create, list, get, cancel, delete. ``Client.submit`` and friends call these."""

    def __init__(self, client: "Client"):
        self.client = client

    def create(self, spec: dict, *, dataset: str | None = None, name: str | None = None,
               labels: dict[str, str] | None = None, idempotency_key: str | None = None,
               dry_run: bool = False) -> dict:
        """Queues a job (or, with dry_run, returns its plan); ``dataset`` overrides the spec's;
        ``name`` and ``labels`` (string key/values) are the job's, to find it again."""
        body = {**spec, **({"dataset": dataset} if dataset else {}), **({"name": name} if name is not None else {}),
                **({"labels": labels} if labels else {})}
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.client.request("POST", "/v1/jobs", json=body, headers=headers,
                                   params={"dry_run": "true"} if dry_run else None).json()

    def get(self, job_id: str) -> dict:
        return self.client.request("GET", f"/v1/jobs/{job_id}").json()

    def list(self, *, status: str | None = None, label: dict | list | str | None = None, name: str | None = None,
             name_prefix: str | None = None, study_id: str | None = None, limit: int = 50, offset: int = 0) -> dict:
        """A page of jobs, newest first; ``label`` {"team": "vision"} (or ["team:vision", ...]) keeps
        the jobs that have every one of them; ``name`` is exact, ``name_prefix`` its start."""
        return self.client.request("GET", "/v1/jobs", params=_list_params(
            status=status, label=label, name=name, name_prefix=name_prefix, study_id=study_id,
            limit=limit, offset=offset)).json()

    def cancel(self, job_id: str) -> dict:
        return self.client.request("POST", f"/v1/jobs/{job_id}/cancel").json()

    def delete(self, job_id: str) -> None:
        """Deletes an ended job with its metrics and files; a job that may still train is a
        TrainyardError 409 (cancel it first), as is a study's member (delete the study)."""
        self.client.request("DELETE", f"/v1/jobs/{job_id}")


class Studies:
    """Studies (/v1/studies): many jobs, variants x seeds or a search, compared in one leaderboard."""

    def __init__(self, client: "Client"):
        self.client = client

    def create(self, study: dict, *, idempotency_key: str | None = None) -> dict:
        """Checks every member (a bad one raises TrainyardError 422 naming it) and starts the study;
        with ``idempotency_key``, a retry returns the study the first call made."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.client.request("POST", "/v1/studies", json=study, headers=headers).json()

    def get(self, study_id: str) -> dict:
        """The study: status, counts, members and leaderboard."""
        return self.client.request("GET", f"/v1/studies/{study_id}").json()

    def list(self, *, status: str | None = None, label: dict | list | str | None = None, name: str | None = None,
             name_prefix: str | None = None, limit: int = 50, offset: int = 0) -> dict:
        """A page of studies, newest first, filtered as Jobs.list is."""
        return self.client.request("GET", "/v1/studies", params=_list_params(
            status=status, label=label, name=name, name_prefix=name_prefix, limit=limit, offset=offset)).json()

    def wait(self, study_id: str, *, timeout: float | None = None, poll_seconds: float = 0.5) -> dict:
        """Polls until the study is no longer running; returns it. TimeoutError after ``timeout`` seconds."""
        return _poll(lambda: self.get(study_id), ended=lambda study: study["status"] != "running",
                     what=f"study {study_id}", timeout=timeout, poll_seconds=poll_seconds)

    def leaderboard(self, study_id: str) -> dict:
        """Per variant, the objective over its seeds, ranked, with the lead's test and a summary line."""
        return self.get(study_id)["leaderboard"]

    def curves(self, study_id: str, *, metric: str | None = None, x: str = "epoch",
               members: bool = False, as_frame: bool = False):
        """Per variant, an epoch metric's mean, std, min and max (default: the objective's metric)
        against epoch, step or seconds; ``members`` adds each member's own curve.

        as_frame: a pandas DataFrame with one row per variant and epoch (CURVE_COLUMNS).
        """
        if as_frame and members:
            raise ValueError("as_frame gives the variants' curves; ask for members=True as dicts")
        params = {"x": x, "members": members, **({"metric": metric} if metric else {})}
        curves = self.client.request("GET", f"/v1/studies/{study_id}/curves", params=params).json()
        return _frame(curve_rows(curves), columns=CURVE_COLUMNS) if as_frame else curves

    def cancel(self, study_id: str) -> dict:
        """Cancels a running study: waiting members at once, running ones at their next step."""
        return self.client.request("POST", f"/v1/studies/{study_id}/cancel").json()

    def delete(self, study_id: str) -> None:
        """Deletes an ended study with its member jobs and their weights."""
        self.client.request("DELETE", f"/v1/studies/{study_id}")

    def stream(self, study_id: str, *, last_event_id: int = 0, max_retries: int = 8) -> Iterator["Event"]:
        """The study's events, live: ``leaderboard`` (now), then ``member`` and ``status`` changes
        and a ``leaderboard`` after each member's end, until ``end`` (status and final leaderboard).

        Resumed after a dropped connection as Client.stream is (a resumed stream starts with a
        fresh leaderboard).
        """
        return self.client._stream(f"/v1/studies/{study_id}/events", last_event_id=last_event_id,
                                   max_retries=max_retries)


class Keys:
    """The tenant's API keys (/v1/keys)."""

    def __init__(self, client: "Client"):
        self.client = client

    def list(self, *, limit: int = 50, offset: int = 0) -> dict:
        """Newest first: id, name, prefix, created, last used (to the minute), expiry, revoked, status;
        never a key itself."""
        return self.client.request("GET", "/v1/keys", params={"limit": limit, "offset": offset}).json()

    def create(self, name: str, *, expires_at: datetime | str | None = None) -> dict:
        """Another key for this tenant; ``key`` in the answer is the secret, shown this once.
        ``expires_at``: a datetime or ISO 8601 string in the future (UTC when it names no zone)."""
        when = expires_at.isoformat() if hasattr(expires_at, "isoformat") else expires_at
        body = {"name": name, **({"expires_at": when} if when is not None else {})}
        return self.client.request("POST", "/v1/keys", json=body).json()

    def revoke(self, key_id: str) -> None:
        """Revokes a key (this client's own included); revoking a revoked key changes nothing."""
        self.client.request("DELETE", f"/v1/keys/{key_id}")
