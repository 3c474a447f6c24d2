"""Hostile and malformed input (issue 14): every try is a 4xx in the one error body, naming the
field, and nothing is stored. Each case here was a 500 (or an unnamed 400) before."""
import io
import json
import zipfile

import numpy as np
import pytest

from tests.e2e.helpers import blobs, errors_for, mlp_spec, upload_npz

JSON = {"Content-Type": "application/json"}
BIG = str(2**63)  # one more than SQLite's INTEGER and PostgreSQL's BIGINT hold


def refused(r, status: int, field: str, words: str = "") -> None:
    """The response is ``status`` in the one error body, its errors naming ``field`` (with ``words``)."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"detail", "errors"} and isinstance(body["detail"], str), body
    assert words in errors_for(r).get(field, "<no such field>"), body


def dataset_total(api) -> int:
    return api.get("/v1/datasets").json()["total"]


def job_total(api) -> int:
    return api.get("/v1/jobs").json()["total"]


@pytest.fixture
def dataset(api) -> dict:
    return upload_npz(api, *blobs(40))


def nested_residual(depth: int) -> bytes:
    """A spec whose first layer is a residual block nested ``depth`` deep, as raw JSON text
    (json.dumps itself recurses past Python's stack at this depth)."""
    inner = '{"type": "relu"}'
    for _ in range(depth):
        inner = '{"type": "residual", "layers": [' + inner + "]}"
    spec = mlp_spec("ds_x")
    text = json.dumps(spec).replace('"layers": [', '"layers": [' + inner + ", ", 1)
    return text.encode()


@pytest.mark.parametrize("body", [b"{", b"", b"\x00", b'"\\ud800"', b'{"x": [[1]], "y": [1], "name": "\\udfff"}'],
                         ids=["open-brace", "empty", "nul", "lone-surrogate", "surrogate-name"])
def test_invalid_json_to_datasets_is_422_naming_the_body(api, body):
    r = api.post("/v1/datasets", content=body, headers=JSON)
    assert r.status_code == 422, r.text
    assert set(errors_for(r)) <= {"body", "name"} and errors_for(r), r.text
    assert dataset_total(api) == 0


@pytest.mark.parametrize("route", ["/v1/datasets", "/v1/jobs"])
@pytest.mark.parametrize("body,words", [
    (b"[" * 10_000 + b"]" * 10_000, "nested more than 64"),
    (b'{"x": [[1]], "y": [1], "name": "caf\xe9"}', "not UTF-8"),
], ids=["nested-10000", "latin-1"])
def test_unparseable_json_names_the_body(api, route, body, words):
    refused(api.post(route, content=body, headers=JSON), 422, "body", words)


def test_a_residual_nested_1000_deep_names_the_body(api):
    refused(api.post("/v1/jobs", content=nested_residual(1000), headers=JSON), 422, "body", "nested")


def test_a_json_subtype_is_checked_as_fastapi_reads_it(api):
    # FastAPI parses text/json and application/x+json as JSON too: the same checks apply.
    for content_type in ("text/json", "application/vnd.trainyard+json"):
        refused(api.post("/v1/jobs", content=b'{"dataset": "caf\xe9"}', headers={"Content-Type": content_type}),
                422, "body", "not UTF-8")


def test_an_empty_idempotency_key_is_422_and_stores_nothing(api, dataset):
    for _ in range(2):
        refused(api.post("/v1/jobs", json=mlp_spec(dataset["id"]), headers={"Idempotency-Key": ""}),
                422, "Idempotency-Key", "at least 1 character")
    assert job_total(api) == 0


@pytest.mark.services
@pytest.mark.parametrize("url,field", [
    (f"/v1/jobs?offset={BIG}", "offset"),
    (f"/v1/datasets?offset={BIG}", "offset"),
    ("/v1/jobs?offset=1" + "0" * 30, "offset"),
], ids=["jobs-offset", "datasets-offset", "jobs-offset-1e30"])
def test_integers_past_64_bits_are_422_naming_the_parameter(api, url, field):
    refused(api.get(url), 422, field, "less than or equal to 9223372036854775807")


@pytest.mark.services
def test_a_metrics_cursor_past_64_bits_is_422(api, dataset):
    job = api.post("/v1/jobs", json=mlp_spec(dataset["id"])).json()
    for value in (str(2**31), BIG, "1" + "0" * 30):  # steps are PostgreSQL INTEGERs
        refused(api.get(f"/v1/jobs/{job['id']}/metrics", params={"after_step": value}), 422, "after_step")
    assert api.get(f"/v1/jobs/{job['id']}/metrics", params={"after_step": str(2**31 - 1)}).status_code == 200


@pytest.mark.services
def test_an_event_id_past_64_bits_is_422_not_a_cut_stream(api, dataset):
    job = api.post("/v1/jobs", json=mlp_spec(dataset["id"])).json()
    api.post(f"/v1/jobs/{job['id']}/cancel")  # ended: a stream it answers replays and closes
    for value in (str(2**31), BIG, "1" + "0" * 30):  # event ids are PostgreSQL INTEGERs
        refused(api.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": value}), 422,
                "Last-Event-ID", "up to 2147483647")
        refused(api.get(f"/v1/jobs/{job['id']}/events", params={"after": value}), 422, "after")
    refused(api.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": "\u0661".encode()}), 422, "Last-Event-ID")
    largest = api.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": str(2**31 - 1)})
    assert largest.status_code == 200 and "event: end" in largest.text, largest.text


def test_a_layer_too_large_to_build_names_its_size(api, dataset):
    spec = mlp_spec(dataset["id"])
    spec["model"]["layers"][0]["out_features"] = 10**30
    refused(api.post("/v1/jobs", json=spec), 422, "model.layers[0].out_features", "too large")
    assert job_total(api) == 0


def test_too_many_parameters_names_the_layer_and_its_size(api, dataset):
    spec = mlp_spec(dataset["id"])
    spec["model"]["layers"][2]["out_features"] = 10**9
    refused(api.post("/v1/jobs", json=spec), 422, "model.layers[2].out_features", "parameters, over the limit")
    assert "GiB" in errors_for(api.post("/v1/jobs", json=spec))["model.layers[2].out_features"]


def test_a_csv_cell_over_the_field_limit_is_422(api):
    content = b"a,label\n" + b"1" * 140_000 + b",0\n"
    r = api.post("/v1/datasets", files={"file": ("c.csv", content)}, data={"target": "label"})
    refused(r, 422, "file", "line 2 of the CSV has a cell over the limit of 131,072 characters")
    assert dataset_total(api) == 0


def test_a_csv_header_over_the_column_limit_is_refused_at_once(api):
    header = ",".join(f"c{i}" for i in range(20_000)).encode()  # quadratic before: header.count per column
    r = api.post("/v1/datasets", files={"file": ("wide.csv", header + b"\n" + b"1," * 19_999 + b"1\n")},
                 data={"target": "c0"})
    refused(r, 422, "file", "20,000 columns, over the limit of 10,000")


@pytest.mark.services
@pytest.mark.parametrize("content,field", [
    (b"a,label\n1,x\x00y\n2,z\n", "file"), (b"a\x00,label\n1,0\n", "file")], ids=["label", "header"])
def test_a_nul_in_a_csv_is_422(api, content, field):
    r = api.post("/v1/datasets", files={"file": ("n.csv", content)}, data={"target": "label"})
    refused(r, 422, field, "NUL")
    assert dataset_total(api) == 0


@pytest.mark.services
def test_a_nul_anywhere_is_a_4xx_on_postgresql_too(api, dataset):
    refused(api.get("/v1/jobs/a%00b"), 404, "path", "NUL")
    refused(api.get("/v1/datasets/a%00b"), 404, "path", "NUL")
    refused(api.post("/v1/datasets", json={"name": "a\u0000b", "x": [[1.0]], "y": [1]}), 422, "name", "NUL")
    refused(api.post("/v1/datasets", json={"x": [[1.0], [2.0]], "y": ["a\u0000", "b"]}), 422, "y[0]", "NUL")
    spec = mlp_spec("ds_a\u0000b")
    refused(api.post("/v1/jobs", json=spec), 422, "dataset", "NUL")
    r = api.post("/v1/datasets", files={"file": ("d.npz", npz(*blobs(10)))}, data={"name": "a\u0000b"})
    refused(r, 422, "name", "NUL")
    assert dataset_total(api) == 1 and job_total(api) == 0


def test_a_multipart_name_is_held_to_the_json_routes_length(api):
    r = api.post("/v1/datasets", files={"file": ("d.npz", npz(*blobs(10)))}, data={"name": "n" * 201})
    refused(r, 422, "name", "at most 200 characters")
    assert dataset_total(api) == 0


def npz(x, y) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x=x, y=y)
    return buf.getvalue()


def zip_bomb(rows: int, columns: int) -> bytes:
    """An .npz of float32 zeros, deflated: about 1,000 times smaller than its arrays."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("x.npy", "w", force_zip64=True) as member:
            header = {"descr": "<f4", "fortran_order": False, "shape": (rows, columns)}
            np.lib.format.write_array_header_1_0(member, header)
            zeros = bytes(4 * columns * 1024)
            for _ in range(rows // 1024):
                member.write(zeros)
        with archive.open("y.npy", "w") as member:
            np.lib.format.write_array(member, np.zeros(rows, dtype=np.int64))
    return buf.getvalue()


def test_an_npz_that_unpacks_past_the_limit_is_refused_before_it_is_read(api, deployment):
    bomb = zip_bomb(rows=1024 * 64, columns=256)  # 64 MiB of zeros in a file of about 70 KB
    assert len(bomb) < 200_000  # under the tests' MAX_UPLOAD_BYTES: only the unpacked size can refuse it
    r = api.post("/v1/datasets", files={"file": ("bomb.npz", bomb)})
    # 422, not 413: the upload is within its limit; what it unpacks to is not a dataset we take
    refused(r, 422, "file", "unpack to 67,633,408 bytes, over the limit of 20,000,000")
    assert dataset_total(api) == 0


def test_a_json_body_over_its_limit_is_413_before_it_is_parsed(api):
    body = b'{"x": [' + b"[1.0]," * 120_000 + b'[1.0]], "y": [1]}'  # 720 KB, over the tests' 500,000
    refused(api.post("/v1/datasets", content=body, headers=JSON), 413, "body", "over the limit of 500,000")

    async def chunks():  # no Content-Length: counted as it arrives
        for i in range(0, len(body), 65536):
            yield body[i:i + 65536]
    refused(api.post("/v1/datasets", content=chunks(), headers=JSON), 413, "body", "over the limit")
    assert dataset_total(api) == 0


def test_a_multipart_body_over_its_limit_without_a_length_is_413(api):
    boundary = b"xyz"
    body = (b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\r\n"
            + b"1,2\n" * 100_000 + b"\r\n--xyz--\r\n")

    async def chunks():
        for i in range(0, len(body), 65536):
            yield body[i:i + 65536]
    r = api.post("/v1/datasets", content=chunks(),
                 headers={"Content-Type": f"multipart/form-data; boundary={boundary.decode()}"})
    refused(r, 413, "file", "over the limit of")


def test_starlettes_multipart_limits_name_the_body(api):
    # Starlette refuses a form of over 1,000 fields (or a part over 1 MiB) with a 400 naming nothing.
    r = api.post("/v1/datasets", files={"file": ("d.npz", npz(*blobs(10)))},
                 data={f"f{i}": "1" for i in range(1200)})
    refused(r, 400, "body", "Too many fields")
    assert dataset_total(api) == 0
