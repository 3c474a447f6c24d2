"""A Python client for the Trainyard API.

    from app.client import Client
    with Client("http://127.0.0.1:8000", api_key) as ty:
        ds = ty.datasets.upload("iris.csv", target="species")   # over 64 MiB: in parts, resumable
        job = ty.jobs.create(spec, dataset=ds["id"], name="baseline", labels={"team": "vision"})
        ty.jobs.list(label={"team": "vision"})     # ?label=team:vision; name=, name_prefix= too
        for event in ty.stream(job["id"]):      # resumes by itself after a dropped connection
            print(event.event, event.data)
        model = ty.load_model(job["id"])         # the trained nn.Module

        study = ty.studies.create({"base": spec, "seeds": [1, 2, 3], "variants": [
            {"label": "sgd", "set": {"optimizer": {"type": "sgd", "lr": 0.1}}},
            {"label": "adam", "set": {"optimizer": {"type": "adam", "lr": 0.01}}}]})
        for event in ty.studies.stream(study["id"]):   # member, status, leaderboard, ..., end
            print(event.event, event.data)
        print(ty.studies.leaderboard(study["id"])["summary"])
        curves = ty.studies.curves(study["id"], as_frame=True)   # variant, epoch, x, mean, std, min, max, n

        ci = ty.keys.create("ci", expires_at="2027-01-01")   # ci["key"]: the secret, shown once
        ty.keys.revoke(ci["id"])

        hook = ty.webhooks.create("https://hooks.example.com/ty", ["job.succeeded", "job.failed"])
        ty.webhooks.deliveries(hook["id"])     # hook["secret"]: the signing secret, shown once

Every refused request raises TrainyardError carrying the HTTP status and the server's body.
"""
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from app.client_webhooks import Webhooks

TERMINAL = ("succeeded", "failed", "cancelled", "pruned")
CURVE_COLUMNS = ("variant", "epoch", "x", "mean", "std", "min", "max", "n")


class TrainyardError(Exception):
    """The server refused a request: ``status`` and ``body`` are what it answered."""

    def __init__(self, status: int | None, body: Any, request: str):
        self.status, self.body, self.request = status, body, request
        self.detail = body.get("detail") if isinstance(body, dict) else str(body)
        self.errors = body.get("errors", []) if isinstance(body, dict) else []
        super().__init__(f"{request}: {status or 'no answer'}: {self.detail}")


class ServerUnreachable(TrainyardError):
    """No HTTP answer at all: the server is down, or the connection keeps dropping."""


@dataclass
class Event:
    """One Server-Sent Event: a job's status, step, epoch or end; a study's leaderboard,
    member, status or end."""

    id: int | None
    event: str
    data: dict


def _raise_for(response: httpx.Response) -> httpx.Response:
    if response.is_success:
        return response
    response.read()
    try:
        body = response.json()
    except ValueError:
        body = response.text
    raise TrainyardError(response.status_code, body,
                         f"{response.request.method} {response.request.url.path}")


def parse_sse(lines: Iterator[str]) -> Iterator[Event]:
    """SSE lines -> events; comments (the server's keep-alive pings) are skipped."""
    import json

    fields: dict[str, str] = {}
    data: list[str] = []
    for line in lines:
        if not line:
            if data or fields:
                raw_id = fields.get("id")
                yield Event(int(raw_id) if raw_id and raw_id.isdigit() else None,
                            fields.get("event", "message"), json.loads("\n".join(data) or "{}"))
            fields, data = {}, []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            else:
                fields[name] = value


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

    def stream(self, study_id: str, *, last_event_id: int = 0, max_retries: int = 8) -> Iterator[Event]:
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


class Client:
    def __init__(self, url: str = "http://127.0.0.1:8000", api_key: str | None = None, *,
                 timeout: float = 30.0, stream_timeout: float = 60.0):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)
        # Longer than the server's keep-alive ping interval (15 s by default).
        self.stream_timeout = stream_timeout
        self.datasets = Datasets(self)
        self.jobs = Jobs(self)
        self.studies = Studies(self)
        self.keys = Keys(self)
        self.webhooks = Webhooks(self)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            return _raise_for(self.http.request(method, path, **kwargs))
        except httpx.TransportError as exc:
            raise ServerUnreachable(None, f"{type(exc).__name__}: {exc}", f"{method} {path}") from exc

    # ---- jobs ----------------------------------------------------------------------

    def submit(self, spec: dict, *, dataset: str | None = None, name: str | None = None,
               labels: dict[str, str] | None = None, idempotency_key: str | None = None,
               dry_run: bool = False) -> dict:
        """Queues a job (or, with dry_run, returns its plan): Jobs.create."""
        return self.jobs.create(spec, dataset=dataset, name=name, labels=labels,
                                idempotency_key=idempotency_key, dry_run=dry_run)

    def get(self, job_id: str) -> dict:
        return self.jobs.get(job_id)

    def list_jobs(self, *, status: str | None = None, limit: int = 50, offset: int = 0, **filters) -> dict:
        """Jobs.list (``label``, ``name``, ``name_prefix``, ``study_id`` as there)."""
        return self.jobs.list(status=status, limit=limit, offset=offset, **filters)

    def wait(self, job_id: str, *, timeout: float | None = None, poll_seconds: float = 0.5) -> dict:
        """Polls until the job has ended; returns it. TimeoutError after ``timeout`` seconds."""
        return _poll(lambda: self.get(job_id), ended=lambda job: job["status"] in TERMINAL,
                     what=f"job {job_id}", timeout=timeout, poll_seconds=poll_seconds)

    def workers(self, *, include_offline: bool = False) -> dict:
        """The workers online (GET /v1/workers): their devices, and whether they are busy."""
        return self.request("GET", "/v1/workers", params={"include_offline": include_offline}).json()

    def cancel(self, job_id: str) -> dict:
        return self.jobs.cancel(job_id)

    def spec(self, job_id: str) -> dict:
        return self.request("GET", f"/v1/jobs/{job_id}/spec").json()

    def predict(self, job_id: str, inputs) -> dict:
        """The trained model's outputs for ``inputs`` (rows of raw features); labels and
        probabilities too for a classifier."""
        return self.request("POST", f"/v1/jobs/{job_id}/predict", json={"inputs": inputs}).json()

    # ---- live events ---------------------------------------------------------------

    def stream(self, job_id: str, *, last_event_id: int = 0, max_retries: int = 8) -> Iterator[Event]:
        """The job's events, live, until its ``end`` event (which is yielded last).

        A dropped connection is resumed with Last-Event-ID, so no event is missed or
        repeated; ServerUnreachable after ``max_retries`` failed tries in a row.
        """
        return self._stream(f"/v1/jobs/{job_id}/events", last_event_id=last_event_id, max_retries=max_retries)

    def _stream(self, path: str, *, last_event_id: int = 0, max_retries: int = 8) -> Iterator[Event]:
        """The SSE stream at ``path`` until its ``end`` event, resumed after a dropped connection
        from the last event id seen (events without an id are not counted)."""
        failures = 0
        while True:
            try:
                for event in self._events_once(path, last_event_id):
                    failures = 0
                    if event.id is not None:
                        last_event_id = event.id
                    yield event
                    if event.event == "end":
                        return
                raise httpx.RemoteProtocolError("the stream closed before its end event")
            except httpx.TransportError as exc:
                failures += 1
                if failures > max_retries:
                    raise ServerUnreachable(None, f"{type(exc).__name__}: {exc}", f"GET {path}") from exc
                time.sleep(min(0.25 * 2 ** (failures - 1), 5.0))

    def _events_once(self, path: str, last_event_id: int) -> Iterator[Event]:
        headers = {"Last-Event-ID": str(last_event_id), "Accept": "text/event-stream"}
        timeout = httpx.Timeout(self.http.timeout.connect, read=self.stream_timeout)
        with self.http.stream("GET", path, headers=headers, timeout=timeout) as response:
            if response.status_code >= 500:
                raise httpx.RemoteProtocolError(f"server answered {response.status_code}")
            _raise_for(response)
            yield from parse_sse(response.iter_lines())

    # ---- results -------------------------------------------------------------------

    def metrics(self, job_id: str, *, kind: str = "epoch", as_frame: bool = False,
                max_points: int | None = None):
        """The job's ``epoch`` (default) or ``step`` points, as dicts or a pandas DataFrame.

        ``max_points`` (4 or more): at most that many, cut by the server, each bucket's first point
        and its lowest and highest train_loss kept (so spikes survive); None: every point."""
        if kind not in ("epoch", "step"):
            raise ValueError("kind is 'epoch' or 'step'")
        if max_points is not None:  # one request: the server reads the whole history to cut it
            page = self.request("GET", f"/v1/jobs/{job_id}/metrics", params={"max_points": max_points}).json()
            points = page["epochs" if kind == "epoch" else "steps"]
            return _frame(points) if as_frame else points
        points, after = [], -1
        while True:
            page = self.request("GET", f"/v1/jobs/{job_id}/metrics",
                                params={"after_step": after}).json()
            if not page["epochs"] and not page["steps"]:
                break
            points += page["epochs" if kind == "epoch" else "steps"]
            after = page["last_step"]
        return _frame(points) if as_frame else points

    def download_weights(self, job_id: str, path: str | Path | None = None, *,
                         format: str = "safetensors") -> bytes | Path:
        """The trained weights (safetensors, format="onnx", or format="onnx-int8"): bytes, or written
        to ``path``. For int8, ``int8_report`` gives what the quantization cost."""
        response = self.request("GET", f"/v1/jobs/{job_id}/weights", params={"format": format})
        if path is None:
            return response.content
        path = Path(path)
        path.write_bytes(response.content)
        return path

    def int8_report(self, job_id: str) -> dict:
        """What the int8 export cost, from its headers: ``rows`` ("validation 100": which rows and
        how many), ``accuracy_fp32``/``accuracy_int8`` (classification), ``mse_fp32``/``mse_int8``/
        ``mse_change`` (regression), ``int8_max_abs_diff``, ``quantized_nodes``, ``float_nodes``
        ("none", or "GRU 1"), ``size_ratio`` (int8 bytes / fp32 bytes). Numbers as floats."""
        response = self.request("GET", f"/v1/jobs/{job_id}/weights", params={"format": "onnx-int8"})
        out = {}
        for name, value in response.headers.items():
            if name.startswith("x-trainyard-"):
                key = name.removeprefix("x-trainyard-").replace("-", "_")
                out[key] = value if key in ("int8_rows", "float_nodes") else float(value)
        out["rows"] = out.pop("int8_rows")
        return out

    def load_model(self, job_id: str):
        """The trained nn.Module, rebuilt from the job's spec with the service's own builder.

        A job that standardized its features gets that step first: an nn.Sequential of
        Standardize and the network (the network alone is ``model[1]``), so it takes the
        same raw inputs as POST /predict.
        """
        from safetensors.torch import load
        from torch import nn

        from app.jobs.preprocessing import module
        from app.ml.build import build_model
        from app.ml.spec import JobSpec

        served = self.spec(job_id)
        model = build_model(JobSpec.model_validate(served["spec"]).model, served["input_shape"])
        model.load_state_dict(load(self.download_weights(job_id)))
        pre = module(served.get("preprocessing"))
        return (nn.Sequential(pre, model) if pre is not None else model).eval()
