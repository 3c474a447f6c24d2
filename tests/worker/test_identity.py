"""A worker's identity (worker/identity.py): the same in its forked training processes, never inherited by processes started later."""
import os
import subprocess
import sys

import pytest

from tests.stack import ROOT
from worker import identity


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.delenv(identity.ENV, raising=False)
    monkeypatch.setattr(identity, "_current", None)


def test_a_process_names_itself_without_leaving_its_name_in_the_environment(fresh):
    me = identity.current()
    assert identity.ENV not in os.environ  # a worker a test starts later must name itself
    assert identity.current() is me and me.name == f"cpu0@{me.host}:{os.getpid()}"
    child = subprocess.run([sys.executable, "-c", "from worker.identity import current; print(current().name)"],
                           cwd=ROOT, capture_output=True, text=True, check=True)
    assert child.stdout.strip() != me.name


def test_a_forked_training_process_reports_its_workers_name(fresh):
    me = identity.current()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child, as billiard forks a training process
        os.write(write, identity.current().name.encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert os.read(read, 200).decode() == me.name


def test_the_supervisors_identity_comes_from_the_environment(fresh, monkeypatch):
    given = identity.Identity(name="gpu0-1@h", kind="gpu", device_index=0, device_name="H200",
                              memory_bytes=2**37, host="h", pid=1)
    monkeypatch.setenv(identity.ENV, given.to_env())
    assert identity.current() == given
