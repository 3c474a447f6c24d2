"""Dataset uploads: CSV, NPZ, inline JSON; bad files refused with the field named and
nothing stored; reads, pages and deletes."""
import numpy as np
import pytest

from tests.api.routes import queued_job
from tests.e2e.helpers import blobs, csv_bytes, errors_for, npz_bytes, upload_npz


def test_csv_upload_with_text_labels(api):
    x, y = blobs(30)
    names = np.array(["cat", "dog", "emu"])[y]
    r = api.post("/v1/datasets", files={"file": ("pets.csv", csv_bytes(x, names))},
                 data={"target": "label", "name": "pets"})
    assert r.status_code == 201, r.text
    ds = r.json()
    assert ds["name"] == "pets" and ds["rows"] == 30 and ds["source_format"] == "csv"
    assert ds["feature_shape"] == [4] and ds["target_shape"] == []
    assert ds["classes"] == ["cat", "dog", "emu"] and ds["target_kind"] == "integer"
    assert ds["feature_names"] == ["a", "b", "c", "d"] and len(ds["sha256"]) == 64
    assert api.get(f"/v1/datasets/{ds['id']}").json() == ds


@pytest.mark.services
def test_same_content_has_the_same_address_whatever_the_format(api):
    x, y = blobs(20)
    a = upload_npz(api, x, y)
    b = api.post("/v1/datasets", json={"x": x.tolist(), "y": y.tolist()}).json()
    assert a["sha256"] == b["sha256"] and a["id"] != b["id"]
    assert b["source_format"] == "json"


def test_multi_column_targets(api):
    rng = np.random.default_rng(0)
    body = "f1,f2,t1,t2\n" + "\n".join(f"{a:.3f},{b:.3f},{a + b:.3f},{a - b:.3f}"
                                       for a, b in rng.normal(size=(10, 2)))
    r = api.post("/v1/datasets", files={"file": ("m.csv", body.encode())}, data={"target": "t1,t2"})
    assert r.status_code == 201, r.text
    assert r.json()["target_shape"] == [2] and r.json()["target_kind"] == "float"


BAD_UPLOADS = [
    ("x.csv", b"a,b,label\n1,2,0\n3,4,1\n", {"target": "y"}, "target", "not in the header"),
    ("x.csv", b"a,b,label\n1,red,0\n3,4,1\n", {"target": "label"}, "column.b", "not numeric"),
    ("x.csv", b"a,b,label\n1,nan,0\n3,4,1\n", {"target": "label"}, "column.b", "NaN"),
    ("x.csv", b"a,b,label\n1,2\n", {"target": "label"}, "file", "row 2"),
    ("x.csv", b"a,b,label\n", {"target": "label"}, "file", "at least one data row"),
    ("x.csv", b"a,b,label\n1,2,0\n", {}, "target", "name the target"),
    ("x.npz", b"PK not a zip", {}, "file", "not a valid .npz"),
    ("x.npz", npz_bytes(x=np.ones((3, 2))), {}, "file", "missing"),
    ("x.npz", npz_bytes(x=np.array([[1.0, np.inf]]), y=np.array([1])), {}, "x", "NaN or Inf"),
    ("x.npz", npz_bytes(x=np.ones((3, 2)), y=np.ones(2)), {}, "y", "2 rows"),
    ("x.txt", b"1,2,3", {}, "file", ".csv"),
]


@pytest.mark.services
@pytest.mark.parametrize("name,content,data,field,words", BAD_UPLOADS,
                         ids=[f"{c[0]}-{c[3]}-{c[4]}" for c in BAD_UPLOADS])
def test_bad_upload_names_the_problem(api, name, content, data, field, words):
    before = api.get("/v1/datasets").json()["total"]
    r = api.post("/v1/datasets", files={"file": (name, content)}, data=data)
    assert r.status_code == 422, r.text
    assert words in errors_for(r)[field]
    assert api.get("/v1/datasets").json()["total"] == before


def test_pickled_npz_is_refused_not_loaded(api):
    r = api.post("/v1/datasets", files={"file": ("p.npz", npz_bytes(x=np.array([{"a": 1}], dtype=object),
                                                                     y=np.array([1])))})
    assert r.status_code == 422
    assert "file" in errors_for(r)


def test_upload_over_the_limit_is_413(api):
    r = api.post("/v1/datasets", files={"file": ("big.csv", b"a,label\n" + b"1.0,1\n" * 40000)},
                 data={"target": "label"})
    assert r.status_code == 413
    assert "200,000" in r.json()["detail"]


def test_inline_json_errors(api):
    r = api.post("/v1/datasets", json={"x": [[1, 2], [3]], "y": [0, 1]})
    assert r.status_code == 422 and "x" in errors_for(r)
    r = api.post("/v1/datasets", json={"x": [[1, 2]], "y": []})
    assert r.status_code == 422 and "y" in errors_for(r)
    r = api.post("/v1/datasets", content=b"x=1", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415


@pytest.mark.services
def test_delete_is_refused_while_a_job_uses_the_dataset(api):
    x, y = blobs(40)
    ds = upload_npz(api, x, y)
    job = queued_job(api, ds["id"])
    r = api.delete(f"/v1/datasets/{ds['id']}")
    assert r.status_code == 409, r.text
    assert "a queued or running job uses this dataset" in r.json()["detail"]
    assert api.get(f"/v1/datasets/{ds['id']}").json() == ds
    # Once the job has ended (here cancelled while queued) the dataset may go; the job stays.
    done = api.post(f"/v1/jobs/{job['id']}/cancel").json()
    assert api.delete(f"/v1/datasets/{ds['id']}").status_code == 204
    assert api.get(f"/v1/datasets/{ds['id']}").status_code == 404
    after = api.get(f"/v1/jobs/{job['id']}").json()
    assert after["status"] == done["status"] == "cancelled" and after["dataset_id"] is None
    r = api.delete(f"/v1/datasets/{ds['id']}")
    assert r.status_code == 404 and ds["id"] in r.json()["detail"]


def test_an_unknown_dataset_is_404(api):
    r = api.get("/v1/datasets/ds_nope")
    assert r.status_code == 404 and r.json() == {"detail": "no dataset 'ds_nope'", "errors": []}


def test_a_multipart_upload_without_a_file_is_422(api):
    r = api.post("/v1/datasets", files={"data": ("x.csv", b"a,label\n1,0\n")}, data={"target": "label"})
    assert r.status_code == 422 and "'file'" in errors_for(r)["file"]
    assert api.get("/v1/datasets").json()["total"] == 0


@pytest.mark.services
def test_pages_of_datasets(api):
    ids = [upload_npz(api, *blobs(10, seed=i))["id"] for i in range(3)]
    page = api.get("/v1/datasets", params={"limit": 2}).json()
    assert (page["total"], page["limit"], page["offset"], len(page["items"])) == (3, 2, 0, 2)
    rest = api.get("/v1/datasets", params={"limit": 2, "offset": 2}).json()
    assert {d["id"] for d in page["items"] + rest["items"]} == set(ids)
    assert page["items"][0]["created_at"] >= page["items"][1]["created_at"] >= rest["items"][0]["created_at"]


@pytest.mark.parametrize("params,field", [({"limit": 0}, "limit"), ({"limit": 501}, "limit"),
                                          ({"offset": -1}, "offset"), ({"limit": "ten"}, "limit")])
def test_page_limits_are_422_naming_the_parameter(api, params, field):
    r = api.get("/v1/datasets", params=params)
    assert r.status_code == 422 and field in errors_for(r), r.text
