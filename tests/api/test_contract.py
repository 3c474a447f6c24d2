"""The OpenAPI document is the contract: schemathesis calls every operation on the real app
and a real SQLite database, as a tenant with a dataset, a queued job and a trained one, and
no answer may be a 5xx, nor carry a status code, a body, a content type or a header the
document does not declare.

Generation is deterministic (derandomized, no example database): CI runs the same cases
every time. The cases go through the in-process deployment's client (tests/api/inprocess.py),
on the app's own event loop, as the bytes a requests session would send.
"""
import inspect
from dataclasses import dataclass

import pytest
import requests
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.main import app
from tests.api.inprocess import BASE_URL, Client, Deployment
from tests.api.routes import REFUSALS, V1_ROUTES, ended_job, held_study, queued_job
from tests.e2e.helpers import blobs, upload_npz
from worker.runner import run_job

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance,
          content_type_conformance, response_headers_conformance]
# Bounded: 30-60 s for every operation on 2 cores shared with other work (2026-12-02). The
# coverage phase (each field's boundary and wrong-type values, on top of the fuzzed cases)
# makes about 9,000 cases of POST /v1/jobs's spec alone (80 s): that operation gets more
# fuzzed cases instead.
MAX_EXAMPLES = 50
CONFIG = schemathesis.Config.from_dict({
    # Hypothesis's one timed check: a slower machine must not fail a case that passes here.
    "suppress-health-check": ["too_slow"],
    "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none",
                   # the key is the fixture tenant's (below); refusals are test_refusals_keep_the_contract's
                   "with-security-parameters": False},
    "operations": [{"include-name": "POST /v1/jobs", "phases": {"coverage": {"enabled": False}},
                    "generation": {"max-examples": 100}}],
})
DOCUMENT = app.openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)
REQUEST_ARGS = set(inspect.signature(requests.Request).parameters)


@dataclass
class World:
    """A tenant's key and what it owns, and a client that sends no key of its own."""

    key: str
    client: Client
    dataset_id: str
    queued_job_id: str
    trained_job_id: str
    running_study_id: str
    completed_study_id: str
    cancelled_study_id: str
    ended_job_id: str
    spare_key_id: str
    webhook_id: str
    upload_id: str
    spare_upload_id: str

    def path_ids(self, path: str, method: str) -> dict[str, str]:
        # The cancel takes the queued job (200 once, 409 after), the delete an ended one (204 once,
        # 404 after); the rest the trained one, so predict and weights reach the model and the event
        # stream ends. Likewise a study's cancel takes the running study, its delete the cancelled
        # one, the reads the completed one. A key's revoke takes a spare key of the tenant's, never
        # the one the cases are sent with. An upload's abort takes a spare upload, the rest an open one.
        job = self.queued_job_id if path.endswith("/cancel") else \
            self.ended_job_id if method.upper() == "DELETE" else self.trained_job_id
        study = self.running_study_id if path.endswith("/cancel") else \
            self.cancelled_study_id if method.upper() == "DELETE" else self.completed_study_id
        upload = self.spare_upload_id if method.upper() == "DELETE" else self.upload_id
        return {"job_id": job, "dataset_id": self.dataset_id, "study_id": study, "key_id": self.spare_key_id,
                "webhook_id": self.webhook_id, "upload_id": upload}

    def send(self, case, key: str | None = "own"):
        """The case as a requests session would put it on the wire, sent through the deployment."""
        return self._send(self.prepare(case), key)

    @staticmethod
    def prepare(case) -> requests.PreparedRequest:
        kwargs = case.as_transport_kwargs(base_url=BASE_URL)
        return requests.Request(**{k: v for k, v in kwargs.items() if k in REQUEST_ARGS}).prepare()

    def _send(self, prepared: requests.PreparedRequest, key: str | None):
        headers = {name: value for name, value in prepared.headers.items() if name.lower() != "authorization"}
        if key:
            headers["Authorization"] = f"Bearer {self.key if key == 'own' else key}"
        return self.client.request(prepared.method, prepared.url, headers=headers, content=prepared.body)


@pytest.fixture(scope="module")
def world(deployment: Deployment):
    key = deployment.new_key()
    with deployment.client(key) as api:
        dataset = upload_npz(api, *blobs(60))
        trained = queued_job(api, dataset["id"], epochs=2)
        run_job(trained["id"])  # the worker's runner, in this process
        assert api.get(f"/v1/jobs/{trained['id']}").json()["status"] == "succeeded"
        queued = queued_job(api, dataset["id"])
        completed = held_study(api, dataset["id"])
        for member in completed["members"]:  # the second is released as the first ends
            run_job(member["job_id"])
        assert api.get(f"/v1/studies/{completed['id']}").json()["status"] == "completed"
        running, cancelled = held_study(api, dataset["id"]), held_study(api, dataset["id"])
        assert api.post(f"/v1/studies/{cancelled['id']}/cancel").status_code == 200
        ended = ended_job(api, dataset["id"])
        spare = api.post("/v1/keys", json={"name": "spare"}).json()
        # An address literal: no DNS. Its deliveries' reads take it; its delete, once, then 404s.
        webhook = api.post("/v1/webhooks", json={"url": "https://93.184.215.14/hook", "events": ["job.failed"]}).json()
        uploads = [api.post("/v1/uploads", json={"filename": "a.csv", "size": 9000}).json()["id"] for _ in (1, 2)]
    with deployment.client(None) as client:
        yield World(key, client, dataset["id"], queued["id"], trained["id"], running["id"], completed["id"],
                    cancelled["id"], ended["id"], spare["id"], webhook["id"], *uploads)


def test_the_document_tested_is_the_one_served(anon):
    assert anon.get("/openapi.json").json() == DOCUMENT


def test_every_refusal_is_documented_in_the_one_error_shape():
    """The refusals schemathesis may not happen to provoke (413, a 503) are documented too."""
    error_body = {"$ref": "#/components/schemas/ErrorBody"}
    assert set(DOCUMENT["components"]["schemas"]["ErrorBody"]["required"]) == {"detail", "errors"}
    assert "HTTPValidationError" not in str(DOCUMENT)
    documented = {}
    for path, operations in DOCUMENT["paths"].items():
        for method, operation in operations.items():
            refusals = {int(code): r for code, r in operation["responses"].items() if int(code) >= 400}
            documented[(method.upper(), path)] = set(refusals)
            if path.startswith("/v1"):
                assert operation["security"] == [{"ApiKey": []}], (method, path)
                assert refusals[401]["headers"]["WWW-Authenticate"]["required"]
                assert refusals[503]["headers"]["Retry-After"]["required"]
                for code, response in refusals.items():
                    assert response["content"] == {"application/json": {"schema": error_body}}, (method, path, code)
    assert {key: codes for key, codes in documented.items() if key[1].startswith("/v1")} == REFUSALS
    assert documented[("GET", "/healthz")] == set() and documented[("GET", "/readyz")] == {503}
    assert documented[("GET", "/metrics")] == {401, 503}  # 401 only while METRICS_TOKEN is set


@schema.parametrize()
def test_every_operation_keeps_the_contract(case, world):
    if case.path_parameters:
        case.path_parameters = {**case.path_parameters, **{
            name: value for name, value in world.path_ids(case.path, case.method).items() if name in case.path_parameters}}
    case.validate_response(world.send(case), checks=CHECKS)


@pytest.mark.parametrize("key", [None, "ty_not-a-real-key"], ids=["no key", "unknown key"])
def test_refusals_keep_the_contract(world, key):
    """401 on every /v1 operation, and 404 for an id the tenant does not own, as documented
    (schemathesis's cases above all carry the key and the fixture's ids)."""
    for method, path, body in V1_ROUTES:
        operation = schema[path][method]
        ids = {name: "nothing_here" for name in ("job_id", "dataset_id", "study_id", "key_id", "webhook_id",
                                                 "upload_id")
               if "{" + name + "}" in path}
        if "{n}" in path:  # a part's number: any will do, the upload is not there
            ids["n"] = "1"
        with_body = {"body": body, "media_type": "application/json"} if body is not None else {}
        case = operation.Case(path_parameters=ids or None, **with_body)
        refused = world.send(case, key=key)
        assert refused.status_code == 401, (method, path, refused.text)
        case.validate_response(refused, checks=CHECKS)
        if ids:
            missing = world.send(case)
            assert missing.status_code == 404, (method, path, missing.text)
            case.validate_response(missing, checks=CHECKS)
