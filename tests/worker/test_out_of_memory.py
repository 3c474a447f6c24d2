"""Out of memory ends the job failed with the reason and the figures, frees what the job
held, and the same process trains the next job.

Without a GPU (CI) the CUDA error is raised by a step patched in (as PyTorch raises it
from an allocation) and the device figures are patched in as a GPU reports them; on a GPU
machine one more test runs out of the real device's memory. The CPU allocator's failure
is real.
"""
import gc
import weakref

import numpy as np
import pytest
import torch

import worker.training.loop
from tests.devices import needs_cuda
from tests.embedded import add_dataset, add_job, embedded, get_job  # noqa: F401
from worker import memory
from worker.runner import run_job
from worker.training.step import make_step

TORCH_MESSAGE = ("CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 79.19 GiB "
                 "of which 3.12 GiB is free. Of the allocated memory 70.01 GiB is allocated by PyTorch.\n"
                 "See documentation for Memory Management")
FAKE_GPU = {"name": "NVIDIA H100 80GB HBM3", "allocated": int(1.5 * 2**30), "peak": 72 * 2**30,
            "total": int(79.19 * 2**30), "free": int(3.12 * 2**30)}


def classes(n=96, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    return (rng.normal(size=(n, 4)) + y[:, None]).astype(np.float32), y.astype(np.int64)


SPEC = {"model": {"layers": [{"type": "linear", "out_features": 16}, {"type": "relu"},
                             {"type": "linear", "out_features": 3}]},
        "loss": {"type": "cross_entropy"}, "optimizer": {"type": "adam", "lr": 0.01},
        "training": {"epochs": 3, "batch_size": 16, "device": "cpu"}}


def cuda_out_of_memory():
    raise torch.OutOfMemoryError(TORCH_MESSAGE)  # as PyTorch's CUDA allocator raises it


def cpu_out_of_memory():
    torch.empty(1 << 62, dtype=torch.uint8)  # 4 EiB: the CPU allocator's own error


def failing_step(fail, models: list):
    """make_step, but the third step's update calls ``fail``; remembers each model, weakly."""
    def build(model, *args, **kwargs):
        models.append(weakref.ref(model))
        step, calls = make_step(model, *args, **kwargs), []
        update = step.update

        def failing_update(gradients, batch):
            calls.append(1)
            if len(calls) == 3:
                activations = torch.empty(1 << 20)  # noqa: F841 held by the frame, as in a real step
                fail()
            return update(gradients, batch)
        step.update = failing_update
        return step
    return build


def run_two_jobs(monkeypatch, fail) -> tuple:
    """The first job's third step calls ``fail``; then a plain job in the same process."""
    x, y = classes()
    dataset = add_dataset(x, y)
    models = []
    monkeypatch.setattr(worker.training.loop, "make_step", failing_step(fail, models))
    first = add_job(SPEC, dataset)
    run_job(first)
    monkeypatch.setattr(worker.training.loop, "make_step", make_step)
    second = add_job(SPEC, dataset)
    run_job(second)
    return get_job(first), get_job(second), models


def test_cuda_out_of_memory_fails_with_the_figures_and_the_next_job_trains(embedded, monkeypatch):  # noqa: F811
    monkeypatch.setattr(memory, "cuda_usage", lambda device: FAKE_GPU)
    failed, second, models = run_two_jobs(monkeypatch, cuda_out_of_memory)

    assert failed.status == "failed" and failed.weights_path is None
    assert failed.error == (
        "CUDA out of memory on NVIDIA H100 80GB HBM3: Tried to allocate 20.00 GiB. GPU 0 has a total "
        "capacity of 79.19 GiB of which 3.12 GiB is free. Of the allocated memory 70.01 GiB is allocated "
        "by PyTorch.; memory: 1.50 GiB allocated by this job (peak 72.00 GiB) of 79.19 GiB "
        "(3.12 GiB free); use a smaller batch_size or model, or precision bf16 (activations in half "
        "the memory)")
    assert models[0]() is None  # the failed job's model (and trainer) were freed
    assert second.status == "succeeded" and second.error is None and second.weights_path


@needs_cuda
def test_a_real_cuda_out_of_memory_fails_the_job_frees_the_device_and_the_next_job_trains(
        embedded, monkeypatch):  # noqa: F811
    """On a GPU: PyTorch's own error, from an allocation larger than the device."""
    def allocate_too_much():
        torch.empty(torch.cuda.mem_get_info()[1] * 2, dtype=torch.uint8, device="cuda")

    monkeypatch.setitem(SPEC["training"], "device", "cuda")
    failed, second, models = run_two_jobs(monkeypatch, allocate_too_much)
    name = torch.cuda.get_device_name()
    assert failed.status == "failed" and failed.error.startswith(f"CUDA out of memory on {name}: Tried to allocate ")
    assert " allocated by this job (peak " in failed.error
    assert failed.error.endswith("; use a smaller batch_size or model, or precision bf16 (activations in half "
                                 "the memory)")
    assert models[0]() is None
    assert second.status == "succeeded" and second.device == name
    memory.release()
    assert torch.cuda.memory_allocated() == 0  # nothing of either job is left on the device


def test_cpu_allocation_failure_fails_the_job_as_out_of_memory(embedded, monkeypatch):  # noqa: F811
    failed, second, models = run_two_jobs(monkeypatch, cpu_out_of_memory)
    assert failed.status == "failed"
    assert failed.error.startswith("out of memory on the CPU: can't allocate memory: you tried to allocate "
                                   "4611686018427387904 bytes")
    assert failed.error.endswith("; use a smaller batch_size or model")
    assert models[0]() is None
    assert second.status == "succeeded"


def test_other_runtime_errors_are_not_taken_for_out_of_memory(embedded, monkeypatch):  # noqa: F811
    def shape_error():
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    failed, second, _ = run_two_jobs(monkeypatch, shape_error)
    assert failed.error == "RuntimeError: mat1 and mat2 shapes cannot be multiplied"
    assert second.status == "succeeded"


def test_cuda_usage_reads_the_device_figures(monkeypatch):
    """What the figures are made of, with torch.cuda's answers as a GPU gives them."""
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (2 * 2**30, 80 * 2**30))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "Tesla T4")
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device: 3 * 2**30)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device: 6 * 2**30)
    cuda = torch.device("cuda")
    assert memory.cuda_usage(cuda) == {"name": "Tesla T4", "allocated": 3 * 2**30, "peak": 6 * 2**30,
                                       "total": 80 * 2**30, "free": 2 * 2**30}
    reason = memory.describe(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB."),
                             cuda, "bf16")
    assert reason == ("CUDA out of memory on Tesla T4: Tried to allocate 1.00 GiB.; memory: 3.00 GiB "
                      "allocated by this job (peak 6.00 GiB) of 80.00 GiB (2.00 GiB free); "
                      "use a smaller batch_size or model")
    assert memory.cuda_usage(torch.device("cpu")) is None


@pytest.mark.parametrize("error, oom", [
    (torch.OutOfMemoryError("CUDA out of memory."), True), (MemoryError(), True),
    (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 bytes"), True),
    (RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"), True),
    (RuntimeError("size mismatch"), False), (ValueError("can't allocate memory"), False),
])
def test_what_counts_as_out_of_memory(error, oom):
    assert memory.is_out_of_memory(error) is oom


def test_release_collects_what_the_job_left():
    class Cycle:
        pass
    a = Cycle()
    a.me = a  # reachable only through itself: freed by the collector, not by reference counts
    ref = weakref.ref(a)
    del a
    gc.disable()
    try:
        memory.release()
    finally:
        gc.enable()
    assert ref() is None
