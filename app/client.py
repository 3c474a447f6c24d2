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
from pathlib import Path
from typing import Any

import httpx

from app.client_resources import (CURVE_COLUMNS, TERMINAL, Datasets, Jobs, Keys, Studies, _frame, _poll,
                                  curve_rows)
from app.client_webhooks import Webhooks

__all__ = ["CURVE_COLUMNS", "TERMINAL", "Client", "Event", "ServerUnreachable", "TrainyardError", "curve_rows",
           "parse_sse"]



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
