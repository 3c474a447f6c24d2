"""The embedded broker never shows a worker a message that is still being written."""
import os
from queue import Empty

import pytest
from kombu import Connection

from app import broker_folder


@pytest.fixture
def channel(tmp_path):
    broker_folder.register()
    conn = Connection(f"{broker_folder.ALIAS}://", transport_options={
        "data_folder_in": str(tmp_path), "data_folder_out": str(tmp_path),
        "store_processed": False})
    yield conn.default_channel
    conn.release()


def test_a_message_is_invisible_until_written_whole(channel, monkeypatch):
    seen_while_writing, renames = [], []
    real_replace = os.replace

    def replace(src, dst):
        # The payload is written but not yet renamed into place: a reader must find nothing.
        renames.append(os.path.getsize(src))
        try:
            seen_while_writing.append(channel._get("trainyard.cpu"))
        except Empty:
            pass
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    channel._put("trainyard.cpu", {"body": "job_1"})
    assert seen_while_writing == [] and len(renames) == 1 and renames[0] > 0
    assert channel._get("trainyard.cpu") == {"body": "job_1"}
    with pytest.raises(Empty):
        channel._get("trainyard.cpu")


def test_queues_sharing_the_folder_stay_apart(channel):
    channel._put("trainyard.gpu", {"body": "g"})
    channel._put("trainyard.cpu", {"body": "c"})
    assert channel._get("trainyard.cpu") == {"body": "c"}
    assert channel._get("trainyard.gpu") == {"body": "g"}
