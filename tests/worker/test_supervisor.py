"""Which worker processes `trainyard worker` starts (worker/supervisor.py)."""
import json

import pytest

from worker.identity import ENV
from worker.supervisor import Gpu, PlanError, child_env, plan

GPUS = [Gpu(0, "2", "NVIDIA H100", 80 * 2**30), Gpu(1, "3", "NVIDIA H100", 80 * 2**30)]


def test_by_default_every_gpu_gets_one_worker_pinned_to_it():
    planned = plan(GPUS, None, None, host="box", pid=7)
    assert [p.identity.name for p in planned] == ["gpu0-7@box", "gpu1-7@box"]
    # The worker sees only its GPU, named as the supervisor's CUDA_VISIBLE_DEVICES named it.
    assert [p.cuda_visible_devices for p in planned] == ["2", "3"]
    assert {(p.identity.kind, p.identity.device_name, p.identity.memory_bytes) for p in planned} == \
        {("gpu", "NVIDIA H100", 80 * 2**30)}


def test_without_a_gpu_one_cpu_worker_that_sees_no_gpu():
    [only] = plan([], None, None, host="box", pid=7)
    assert (only.identity.name, only.identity.kind, only.cuda_visible_devices) == ("cpu0-7@box", "cpu", "")
    assert only.identity.device_name.endswith("cores)") and only.identity.memory_bytes > 0


def test_devices_and_cpu_choose_the_workers():
    planned = plan(GPUS, [1], 2, host="box", pid=7)
    assert [(p.identity.name, p.cuda_visible_devices) for p in planned] == [
        ("gpu1-7@box", "3"), ("cpu0-7@box", ""), ("cpu1-7@box", "")]
    assert [p.identity.name for p in plan(GPUS, None, 1, host="box", pid=7)] == ["cpu0-7@box"]


@pytest.mark.parametrize("devices, cpu, words", [
    ([2], None, "no GPU 2 on this machine; GPUs torch sees: 0 (NVIDIA H100), 1 (NVIDIA H100)"),
    ([0, 0], None, "names a GPU twice"),
    (None, 0, "nothing to start"),
    ([], None, "nothing to start"),
])
def test_impossible_choices_are_refused_with_the_reason(devices, cpu, words):
    with pytest.raises(PlanError, match=words.replace("(", r"\(").replace(")", r"\)")):
        plan(GPUS, devices, cpu)


def test_no_gpu_at_all_is_named_when_devices_are_asked_for():
    with pytest.raises(PlanError, match="GPUs torch sees: none"):
        plan([], [0], None)


def test_each_worker_process_gets_its_identity_and_device_in_its_environment():
    gpu = plan(GPUS, [0], None, host="box", pid=7)[0]
    env = child_env(gpu)
    assert env["CUDA_VISIBLE_DEVICES"] == "2"
    assert json.loads(env[ENV])["name"] == "gpu0-7@box" and json.loads(env[ENV])["device_index"] == 0


def test_the_cores_are_split_equally_between_the_workers():
    # Two CPU workers on 2 cores: one thread each, not two each (4 threads on 2 cores).
    assert [p.identity.threads for p in plan([], None, 2, cores=2)] == [1, 1]
    assert [p.identity.threads for p in plan([], None, 3, cores=16)] == [5, 5, 5]
    assert [p.identity.threads for p in plan(GPUS, None, 2, cores=16)] == [8, 8]
    assert [p.identity.threads for p in plan(GPUS, [0, 1], 2, cores=16)] == [4, 4, 4, 4]
    # More workers than cores: each still gets one.
    assert [p.identity.threads for p in plan([], None, 4, cores=2)] == [1, 1, 1, 1]
    assert [p.identity.threads for p in plan([], None, 1, cores=2)] == [2]


def test_threads_can_be_given_and_travel_to_the_worker_process():
    planned = plan([], None, 2, threads=3, cores=2)
    assert [p.identity.threads for p in planned] == [3, 3]
    assert json.loads(child_env(planned[0])[ENV])["threads"] == 3
    with pytest.raises(PlanError, match="--threads must be at least 1"):
        plan([], None, 2, threads=0)


def test_gpus_per_worker_gives_each_worker_several_gpus():
    [both] = plan(GPUS, None, None, host="box", pid=7, gpus_per_worker=2)
    assert (both.identity.name, both.cuda_visible_devices, both.identity.devices) == ("gpu0+1-7@box", "2,3", 2)
    assert both.identity.device_name == "2 x NVIDIA H100" and both.identity.device_index == 0
    assert json.loads(child_env(both)[ENV])["devices"] == 2
    with pytest.raises(PlanError, match="does not divide the 1 GPUs"):
        plan(GPUS, [0], None, gpus_per_worker=2)
