"""Both artifact stores, the folder and S3 (a real moto server process), keep the one interface;
S3 writes are whole or absent, and its local copies are checked and follow changed objects."""
import uuid

import pytest
from boto3.s3.transfer import TransferConfig
from pydantic import ValidationError

from app import s3store
from app.config import Settings, get_settings
from app.filecache import LocalCache
from app.s3store import S3Store, make_client
from app.storage import ArtifactStore, get_store, store_unreachable
from tests.s3server import aws_env, s3  # noqa: F401 - fixtures


def s3_store(s3, tmp_path, max_bytes: int = 0) -> S3Store:
    return S3Store(s3.bucket, f"t-{uuid.uuid4().hex[:8]}", LocalCache(tmp_path / "cache", max_bytes),
                   make_client(s3.endpoint))


@pytest.fixture(params=["file", "s3"])
def store(request, tmp_path):
    if request.param == "file":
        return ArtifactStore(tmp_path / "artifacts")
    request.getfixturevalue("aws_env")
    return s3_store(request.getfixturevalue("s3"), tmp_path)


def test_round_trips_and_a_missing_key(store):
    store.put("jobs/j1/weights.safetensors", b"weights")
    assert store.exists("jobs/j1/weights.safetensors") and store.size("jobs/j1/weights.safetensors") == 7
    assert store.get("jobs/j1/weights.safetensors") == b"weights"
    assert store.local_path("jobs/j1/weights.safetensors").read_bytes() == b"weights"
    with store.open("jobs/j1/weights.safetensors") as f:
        assert f.read(3) == b"wei" and f.read() == b"ghts"
    assert not store.exists("jobs/j1/nothing")
    for read in (store.get, store.size, store.local_path, store.open):
        with pytest.raises(FileNotFoundError):
            read("jobs/j1/nothing")
    store.delete("jobs/j1/weights.safetensors")
    store.delete("jobs/j1/weights.safetensors")  # deleting what is gone is no error
    assert not store.exists("jobs/j1/weights.safetensors")


def test_put_file_keys_folder_bytes_and_delete_folder(store, tmp_path):
    source = tmp_path / "export.onnx"
    source.write_bytes(b"x" * 1000)
    store.put_file("jobs/a/model.onnx", source)
    store.put("jobs/a/sub/checkpoint.pt", b"c" * 10)
    store.put("jobs/ab/weights.safetensors", b"w")  # a sibling whose name starts the same
    assert source.read_bytes() == b"x" * 1000  # left where it was
    assert store.keys("jobs/a") == ["jobs/a/model.onnx", "jobs/a/sub/checkpoint.pt"]
    assert store.keys("jobs/a/") == store.keys("jobs/a") and store.keys("jobs/none") == []
    assert store.folder_bytes("jobs/a") == 1010 and store.folder_bytes("jobs/none") == 0
    store.delete_folder("jobs/a")
    store.delete_folder("jobs/none")
    assert store.keys("jobs/a") == [] and store.keys("jobs/ab") == ["jobs/ab/weights.safetensors"]


def test_a_changed_object_is_fetched_again_and_a_dataset_copy_is_trusted(s3, tmp_path, aws_env):
    store = s3_store(s3, tmp_path)
    store.put("jobs/j/export.onnx", b"version 1")
    first = store.local_path("jobs/j/export.onnx")
    store.put("jobs/j/export.onnx", b"version 2, longer")
    second = store.local_path("jobs/j/export.onnx")
    assert second.read_bytes() == b"version 2, longer" and not first.exists()
    store.put("datasets/abc/x.npy", b"content-addressed")
    copy = store.local_path("datasets/abc/x.npy")
    s3.gate.close()  # a dataset's copy is served without asking the store
    try:
        assert store.local_path("datasets/abc/x.npy") == copy
        with pytest.raises(Exception) as down:
            store.local_path("jobs/j/export.onnx")  # a mutable key's copy is checked first
        assert store_unreachable(down.value)
    finally:
        s3.gate.open()
    store.delete("datasets/abc/x.npy")
    assert not copy.exists()


@pytest.mark.parametrize("size, cut_at", [(1 << 20, 300_000), (12 << 20, 7 << 20)], ids=["put", "multipart"])
def test_an_upload_cut_by_an_outage_leaves_the_previous_object(s3, tmp_path, aws_env, monkeypatch, size, cut_at):
    monkeypatch.setattr(s3store, "TRANSFER", TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20,
                                                            max_concurrency=1))
    store = s3_store(s3, tmp_path)
    store.put("jobs/j/checkpoint.pt", b"good checkpoint")
    s3.gate.cut_at = cut_at
    try:
        with pytest.raises(Exception) as failed:
            store.put("jobs/j/checkpoint.pt", b"n" * size)
        assert store_unreachable(failed.value)
    finally:
        s3.gate.cut_at = None
        s3.gate.open()
    assert store.get("jobs/j/checkpoint.pt") == b"good checkpoint"
    assert store.keys("jobs/j") == ["jobs/j/checkpoint.pt"]


def test_the_cache_drops_the_least_recently_used_copies_past_its_bound(s3, tmp_path, aws_env):
    store = s3_store(s3, tmp_path, max_bytes=250)
    for name in "abc":
        store.put(f"datasets/{name}", name.encode() * 100)
    a = store.local_path("datasets/a")
    b = store.local_path("datasets/b")
    store.local_path("datasets/a")  # used again: b is now the least recent
    c = store.local_path("datasets/c")
    assert a.exists() and c.exists() and not b.exists()
    assert store.local_path("datasets/b").read_bytes() == b"b" * 100  # fetched again when needed


def test_a_short_download_leaves_no_copy(tmp_path):
    cache = LocalCache(tmp_path, 0)
    with pytest.raises(OSError, match="incomplete download"):
        cache.fetch(tmp_path / "datasets" / "x", 10, lambda tmp: tmp.write_bytes(b"12345"))
    assert [p.name for p in (tmp_path / "datasets").iterdir()] == []


def test_get_store_follows_artifact_url(s3, tmp_path, aws_env, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    for url, kind in [("", ArtifactStore), ((tmp_path / "elsewhere").as_uri(), ArtifactStore),
                      (f"s3://{s3.bucket}/some/prefix", S3Store)]:
        monkeypatch.setenv("ARTIFACT_URL", url)
        monkeypatch.setenv("S3_ENDPOINT_URL", s3.endpoint)
        get_settings.cache_clear()
        try:
            store = get_store()
            assert isinstance(store, kind) and get_store() is store  # one per process
            store.put("jobs/j/w", b"w")
            assert store.get("jobs/j/w") == b"w"
        finally:
            get_settings.cache_clear()
    assert s3.names("some/prefix/") == ["some/prefix/jobs/j/w"]
    assert (tmp_path / "artifacts" / "jobs" / "j" / "w").is_file()
    assert (tmp_path / "elsewhere" / "jobs" / "j" / "w").is_file()


@pytest.mark.parametrize("url", ["s3://", "gs://bucket", "/relative/path", "file://relative"])
def test_an_unknown_artifact_url_is_refused_by_name(url):
    with pytest.raises(ValidationError, match="ARTIFACT_URL"):
        Settings(_env_file=None, artifact_url=url)
