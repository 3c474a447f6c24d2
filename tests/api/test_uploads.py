"""Resumable uploads (/v1/uploads) in process: parts in any order, re-sent, checked (number, size,
checksum), listed when missing; complete gives the dataset a one-shot upload gives; other tenants,
limits, quotas, abort and expiry. Parts are UPLOAD_PART_BYTES=4096 here (tests/conftest.py)."""
import base64
import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import update

from app.db import get_session_factory
from app.models import Tenant, Upload
from app.models.base import utcnow
from app.storage import get_store
from tests.e2e.helpers import blobs, csv_bytes, errors_for

PART = 4096


def pets_csv(rows: int = 400) -> bytes:
    x, y = blobs(rows)
    return csv_bytes(x, y)


def chunks(data: bytes) -> list[bytes]:
    return [data[i:i + PART] for i in range(0, len(data), PART)]


def open_upload(api, data: bytes, **fields) -> dict:
    r = api.post("/v1/uploads", json={"filename": "pets.csv", "size": len(data), "target": "label", **fields})
    assert r.status_code == 201, r.text
    return r.json()


def put(api, upload_id: str, n: int, body, **headers):
    return api.request("PUT", f"/v1/uploads/{upload_id}/parts/{n}", content=body, headers=headers)


def send_all(api, upload_id: str, data: bytes, order=None) -> None:
    pieces = chunks(data)
    for n in order or range(1, len(pieces) + 1):
        r = put(api, upload_id, n, pieces[n - 1])
        assert r.status_code == 200, r.text
        assert r.json() == {"n": n, "size": len(pieces[n - 1]), "sha256": hashlib.sha256(pieces[n - 1]).hexdigest()}


async def streamed(*pieces: bytes):
    """A body httpx sends chunked: without a Content-Length, its size is found as it arrives."""
    for piece in pieces:
        yield piece


def stored_parts(upload_id: str) -> list[str]:
    return get_store().keys(f"uploads/{upload_id}")


def set_expiry(upload_id: str, when) -> None:
    with get_session_factory()() as s:
        s.execute(update(Upload).where(Upload.id == upload_id).values(expires_at=when))
        s.commit()


@pytest.mark.services
def test_parts_out_of_order_complete_into_the_one_shot_dataset(api):
    data = pets_csv()
    up = open_upload(api, data, name="pets")
    count = len(chunks(data))
    assert count >= 4 and up["part_size"] == PART and up["parts_expected"] == count
    assert up["missing"] == list(range(1, count + 1)) and up["parts"] == [] and up["expires_at"]
    send_all(api, up["id"], data, order=list(range(count, 0, -1)))
    status = api.get(f"/v1/uploads/{up['id']}").json()
    assert status["missing"] == [] and [p["n"] for p in status["parts"]] == list(range(1, count + 1))
    assert status["received_bytes"] == len(data)

    r = api.post(f"/v1/uploads/{up['id']}/complete")
    assert r.status_code == 201, r.text
    ds = r.json()
    one_shot = api.post("/v1/datasets", files={"file": ("pets.csv", data)}, data={"target": "label"}).json()
    assert (ds["sha256"], ds["rows"], ds["classes"]) == (one_shot["sha256"], one_shot["rows"], one_shot["classes"])
    assert ds["name"] == "pets" and ds["source_format"] == "csv"
    assert api.get(f"/v1/datasets/{ds['id']}").json() == ds
    assert stored_parts(up["id"]) == []
    done = api.get(f"/v1/uploads/{up['id']}").json()
    assert done["dataset_id"] == ds["id"] and done["missing"] == [] and done["parts"] == []
    again = api.post(f"/v1/uploads/{up['id']}/complete")  # a client that lost the first answer
    assert again.status_code == 201 and again.json() == ds
    r = put(api, up["id"], 1, chunks(data)[0])
    assert r.status_code == 409 and ds["id"] in r.json()["detail"]
    assert api.get("/v1/datasets").json()["total"] == 2


def test_a_resent_part_replaces_the_first(api):
    data = pets_csv()
    up = open_upload(api, data)
    first = chunks(data)[0]
    damaged = bytes(len(first))
    assert put(api, up["id"], 1, damaged).json()["sha256"] == hashlib.sha256(damaged).hexdigest()
    send_all(api, up["id"], data)
    status = api.get(f"/v1/uploads/{up['id']}").json()
    assert status["parts"][0]["sha256"] == hashlib.sha256(first).hexdigest()
    assert len(stored_parts(up["id"])) == up["parts_expected"]  # the damaged part's object is gone
    r = api.post(f"/v1/uploads/{up['id']}/complete")
    assert r.status_code == 201, r.text


@pytest.mark.services
def test_missing_parts_are_listed_and_complete_names_them(api):
    data = pets_csv()
    up = open_upload(api, data)
    pieces = chunks(data)
    for n in (1, 3):
        assert put(api, up["id"], n, pieces[n - 1]).status_code == 200
    missing = [n for n in range(1, len(pieces) + 1) if n not in (1, 3)]
    assert api.get(f"/v1/uploads/{up['id']}").json()["missing"] == missing
    r = api.post(f"/v1/uploads/{up['id']}/complete")
    assert r.status_code == 409
    assert ", ".join(map(str, missing)) in errors_for(r)["parts"]
    assert api.get(f"/v1/uploads/{up['id']}").json()["completing"] is False  # open again: send the rest
    send_all(api, up["id"], data, order=missing)
    assert api.post(f"/v1/uploads/{up['id']}/complete").status_code == 201


def test_bad_parts_are_refused_with_the_field_named(api):
    data = pets_csv()
    up = open_upload(api, data)
    first, last, last_n = chunks(data)[0], chunks(data)[-1], up["parts_expected"]
    assert len(last) < PART
    cases = [
        (put(api, up["id"], 0, first), 422, "n"),
        (put(api, up["id"], last_n + 1, first), 422, "n"),
        (put(api, up["id"], 1, first[:-1]), 422, "Content-Length"),
        (put(api, up["id"], last_n, streamed(last, b"x")), 422, "body"),  # chunked: no Content-Length
        (put(api, up["id"], 1, streamed(first, b"x")), 413, "body"),  # over any part's size
        (put(api, up["id"], 1, streamed(first[:-1])), 422, "body"),
        (put(api, up["id"], 1, first, **{"x-trainyard-sha256": hashlib.sha256(b"other").hexdigest()}),
         422, "x-trainyard-sha256"),
        (put(api, up["id"], 1, first, **{"x-trainyard-sha256": "abc"}), 422, "x-trainyard-sha256"),
        (put(api, up["id"], 1, first, **{"Content-MD5": base64.b64encode(hashlib.md5(b"o").digest()).decode()}),
         422, "Content-MD5"),
        (put(api, up["id"], 1, first * 1000), 413, "body"),  # over any part's size: refused unread
    ]
    for r, status, field in cases:
        assert r.status_code == status, (field, r.text)
        assert field in errors_for(r), r.text
    assert api.get(f"/v1/uploads/{up['id']}").json()["parts"] == []
    assert stored_parts(up["id"]) == []
    good_md5 = base64.b64encode(hashlib.md5(first).digest()).decode()
    ok = put(api, up["id"], 1, first, **{"Content-MD5": good_md5,
                                         "x-trainyard-sha256": hashlib.sha256(first).hexdigest()})
    assert ok.status_code == 200, ok.text


def test_another_tenants_upload_is_404(api, other_api):
    data = pets_csv(60)
    up = open_upload(api, data)
    assert other_api.get(f"/v1/uploads/{up['id']}").status_code == 404
    assert put(other_api, up["id"], 1, chunks(data)[0]).status_code == 404
    assert other_api.post(f"/v1/uploads/{up['id']}/complete").status_code == 404
    assert other_api.delete(f"/v1/uploads/{up['id']}").status_code == 404
    assert stored_parts(up["id"]) == [] and api.get(f"/v1/uploads/{up['id']}").status_code == 200


def test_bad_create_bodies(api):
    r = api.post("/v1/uploads", json={"filename": "big.csv", "size": 200_001})
    assert r.status_code == 413 and "200,000" in errors_for(r)["size"]
    for body, field in [({"size": 10}, "filename"), ({"filename": "a.csv", "size": 0}, "size"),
                        ({"filename": "a.csv", "size": 10, "colour": 1}, "colour"),
                        ({"filename": "sales.xlsx", "size": 10}, "filename")]:
        r = api.post("/v1/uploads", json=body)
        assert r.status_code == 422 and field in errors_for(r), r.text
    assert ".parquet" in errors_for(r)["filename"]  # what it may be instead


def test_open_uploads_reserve_their_size_against_the_stored_bytes_quota(api):
    first = open_upload(api, b"x" * 50_000)
    with get_session_factory()() as s:
        tenant_id = s.get(Upload, first["id"]).tenant_id
        s.execute(update(Tenant).where(Tenant.id == tenant_id).values(quota_stored_bytes=80_000))
        s.commit()
    r = api.post("/v1/uploads", json={"filename": "b.csv", "size": 40_000})
    assert r.status_code == 413 and "stored_bytes" in errors_for(r)["size"]
    assert api.delete(f"/v1/uploads/{first['id']}").status_code == 204  # the reservation goes with it
    assert api.post("/v1/uploads", json={"filename": "b.csv", "size": 40_000}).status_code == 201


@pytest.mark.services
def test_a_data_error_at_complete_keeps_the_upload_for_another_target(api):
    data = pets_csv(60)
    up = open_upload(api, data, target="species")
    send_all(api, up["id"], data)
    r = api.post(f"/v1/uploads/{up['id']}/complete")
    assert r.status_code == 422 and "not in the header" in errors_for(r)["target"]
    assert api.get("/v1/uploads/" + up["id"]).json()["missing"] == []
    r = api.post(f"/v1/uploads/{up['id']}/complete", json={"target": "label", "name": "fixed"})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "fixed"


def test_abort_removes_the_upload_and_its_parts(api):
    data = pets_csv()
    up = open_upload(api, data)
    send_all(api, up["id"], data, order=[1, 2])
    assert len(stored_parts(up["id"])) == 2
    assert api.delete(f"/v1/uploads/{up['id']}").status_code == 204
    assert stored_parts(up["id"]) == []
    assert api.get(f"/v1/uploads/{up['id']}").status_code == 404
    assert put(api, up["id"], 3, chunks(data)[2]).status_code == 404


@pytest.mark.services
def test_expired_uploads_are_gone_and_the_reaper_removes_their_parts(api):
    from worker.reaper import sweep_uploads

    data = pets_csv()
    up = open_upload(api, data)
    send_all(api, up["id"], data, order=[1])
    set_expiry(up["id"], utcnow() - timedelta(seconds=1))
    r = api.get(f"/v1/uploads/{up['id']}")
    assert r.status_code == 404 and "expired" in r.json()["detail"]
    assert put(api, up["id"], 2, chunks(data)[1]).status_code == 404
    assert api.post(f"/v1/uploads/{up['id']}/complete").status_code == 404
    assert stored_parts(up["id"]) != []
    assert sweep_uploads() >= 1
    assert stored_parts(up["id"]) == []
    with get_session_factory()() as s:
        assert s.get(Upload, up["id"]) is None


def test_each_part_moves_the_expiry_on(api):
    data = pets_csv()
    up = open_upload(api, data)
    soon = utcnow() + timedelta(minutes=5)
    set_expiry(up["id"], soon)
    send_all(api, up["id"], data, order=[1])
    with get_session_factory()() as s:
        assert s.get(Upload, up["id"]).expires_at > soon + timedelta(hours=1)
