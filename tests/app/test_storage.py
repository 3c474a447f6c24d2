"""The artifact store writes atomically: a crash mid-write never leaves a torn file in place."""
import pytest

from app.storage import ArtifactStore


def test_a_failed_write_leaves_the_previous_file_and_no_temp(tmp_path, monkeypatch):
    store = ArtifactStore(tmp_path)
    store.put("jobs/j/checkpoint.pt", b"good checkpoint")

    def crash(*_):
        raise OSError("disk full")  # as a kill between writing and renaming would leave it

    monkeypatch.setattr("os.replace", crash)
    with pytest.raises(OSError):
        store.put("jobs/j/checkpoint.pt", b"half a new checkpoint")
    assert store.get("jobs/j/checkpoint.pt") == b"good checkpoint"
    assert [p.name for p in (tmp_path / "jobs" / "j").iterdir()] == ["checkpoint.pt"]
