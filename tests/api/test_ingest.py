"""Streaming ingestion through POST /v1/datasets (app/datasets/ingest/): CSV, Parquet and Arrow IPC
uploads become the same stored arrays; a bad row deep in a file is reported by its line and
column and leaves nothing behind; the pre-flight says which path the data takes on a worker."""
import io

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from app.config import get_settings
from app.datasets.ingest import csv_file
from tests.e2e.helpers import blobs, csv_bytes, errors_for, mlp_spec


def table(x: np.ndarray, labels) -> pa.Table:
    return pa.table({**{name: x[:, j] for j, name in enumerate("abcd")}, "label": labels})


def parquet_bytes(t: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(t, buf, row_group_size=7)  # several row groups: read group by group
    return buf.getvalue()


def arrow_bytes(t: pa.Table) -> bytes:
    buf = io.BytesIO()
    feather.write_feather(t, buf, compression="uncompressed", chunksize=9)
    return buf.getvalue()


def upload(api, name: str, content: bytes, target="label"):
    return api.post("/v1/datasets", files={"file": (name, content)}, data={"target": target} if target else {})


def leftovers(deployment) -> list:
    folder = deployment.data_dir / "ingest"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_csv_parquet_and_arrow_give_one_dataset(api, deployment):
    x, y = blobs(40)
    x = np.round(x, 4).astype(np.float32)  # what the CSV's six decimals hold exactly
    names = np.array(["cat", "dog", "emu"])[y]
    made = [upload(api, "d.csv", csv_bytes(x, names)),
            upload(api, "d.parquet", parquet_bytes(table(x, names))),
            upload(api, "d.arrow", arrow_bytes(table(x, names))),
            upload(api, "d.feather", arrow_bytes(table(x, pa.array(names).dictionary_encode().cast(pa.string()))))]
    for r in made:
        assert r.status_code == 201, r.text
    first = made[0].json()
    assert {r.json()["source_format"] for r in made} == {"csv", "parquet", "arrow"}
    for r in made:
        ds = r.json()
        assert ds["sha256"] == first["sha256"] and ds["classes"] == ["cat", "dog", "emu"]
        assert (ds["rows"], ds["feature_shape"], ds["feature_names"]) == (40, [4], ["a", "b", "c", "d"])
        assert ds["bytes"] == first["bytes"] > 40 * 4 * 4
    assert leftovers(deployment) == []


def test_parquet_numeric_targets_and_integer_features(api):
    t = pa.table({"f": pa.array(range(20), pa.int32()), "g": np.linspace(0, 1, 20), "y": np.linspace(-1, 1, 20)})
    ds = upload(api, "n.parquet", parquet_bytes(t), "y").json()
    assert ds["target_kind"] == "float" and ds["feature_shape"] == [2] and ds["target_min"] == -1.0


@pytest.fixture
def small_blocks(monkeypatch):
    """4 KiB CSV blocks, so a file under the tests' upload limit is read in many (the bad row's far from the first)."""
    monkeypatch.setattr(csv_file, "BLOCK_BYTES", 4096)


def bad_csv_deep(rows: int, line_text: str) -> bytes:
    good = "".join(f"{i % 7}.5,{i % 5},{i % 3}\n" for i in range(rows))
    return ("a,b,label\n" + good + line_text + "\n" + good[:200]).encode()


@pytest.mark.parametrize("bad,field,words", [
    ("1.5,abc,0", "column.b", "is not numeric (row 15,002: 'abc')"),
    ("1.5,inf,0", "column.b", "row 15,002 is NaN or Inf"),
    ("1.5,2", "file", "row 15,002 has 2 fields, the header has 3"),
    ("1.5,2,", "target.label", "row 15,002 is empty"),
], ids=["text", "inf", "ragged", "empty-target"])
def test_a_bad_row_deep_in_a_csv_is_named_by_line_and_column_and_nothing_is_stored(api, deployment, bad, field, words,
                                                                                     small_blocks):
    r = upload(api, "deep.csv", bad_csv_deep(15_000, bad))
    assert r.status_code == 422, r.text
    assert words in errors_for(r)[field], r.text
    assert api.get("/v1/datasets").json()["total"] == 0
    assert leftovers(deployment) == []


def test_text_labels_after_many_numbers_are_classes_of_every_row(api, small_blocks):
    content = bad_csv_deep(15_000, "1.5,2,other")  # numbers for 15,000 rows (many blocks), then a word
    ds = upload(api, "late.csv", content).json()
    assert ds["classes"] == ["0", "1", "2", "other"] and ds["target_kind"] == "integer"


@pytest.mark.parametrize("name,content,target,field,words", [
    ("x.parquet", b"PAR1 not parquet", "label", "file", "not a valid Parquet file"),
    ("x.arrow", b"not arrow at all", "label", "file", "not a valid Arrow IPC file"),
    ("x.csv", b"a,b,label\n1,2,0\n", "lable", "target", "did you mean 'label'?"),
    ("x.json", b"{}", "label", "file", ".parquet"),
])
def test_unreadable_files_and_unknown_columns_name_the_field(api, name, content, target, field, words):
    r = upload(api, name, content, target)
    assert r.status_code == 422 and words in errors_for(r)[field], r.text


def test_a_parquet_text_feature_names_its_column_and_row(api):
    t = pa.table({"a": ["1", "2", "x"], "label": [0, 1, 0]})
    r = upload(api, "t.parquet", parquet_bytes(t))
    assert r.status_code == 422 and "is not numeric (row 3: 'x')" in errors_for(r)["column.a"], r.text


@pytest.fixture
def worker_memory(monkeypatch):
    def set_to(nbytes: int) -> None:
        monkeypatch.setenv("WORKER_MEMORY_BYTES", str(nbytes))
        get_settings.cache_clear()
    yield set_to
    monkeypatch.delenv("WORKER_MEMORY_BYTES")
    get_settings.cache_clear()


def test_the_plan_says_which_path_the_data_takes(api, worker_memory):
    x, y = blobs(100)
    ds = upload(api, "p.csv", csv_bytes(x, y)).json()
    spec = mlp_spec(ds["id"])
    worker_memory(10**9)
    plan = api.post("/v1/jobs", json=spec, params={"dry_run": "true"}).json()
    assert plan["data_bytes"] == 100 * (4 * 4 + 8) and plan["data_path"] == "in_memory"
    worker_memory(1000)
    plan = api.post("/v1/jobs", json=spec, params={"dry_run": "true"}).json()
    assert plan["data_path"] == "memory_mapped" and "memory-mapped" in plan["data_note"]
    spec["training"]["batch_size"] = "full"
    r = api.post("/v1/jobs", json=spec, params={"dry_run": "true"})
    assert r.status_code == 422 and "WORKER_MEMORY_BYTES" in errors_for(r)["training.batch_size"], r.text
