"""Out of memory: the reason a job failed, with the memory figures, and freeing the memory
it held so that the worker's process trains the next job as if nothing happened.

A CUDA out-of-memory error is recoverable: the allocation failed, the CUDA context is
intact. What keeps the memory taken is the job's own tensors, reachable from the error's
traceback (its frames hold the trainer, the model and optimizer, the failed step's
activations). So the runner keeps only the reason, a string, and lets the error go;
``release`` then collects what is left and hands the cached blocks back to the device.
"""
import gc

import torch

GiB = 2**30


class OutOfMemory(Exception):
    """Training ran out of memory; the message says on which device and how much it held."""


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):  # torch.cuda.OutOfMemoryError too
        return True
    # The CPU allocator's failure is a plain RuntimeError; cuBLAS fails its workspace like this.
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in str(exc)
                                              or "CUBLAS_STATUS_ALLOC_FAILED" in str(exc))


def start(device: torch.device) -> None:
    """Called as a job starts on its device: the peak it reports is this job's."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def cuda_usage(device: torch.device) -> dict | None:
    """The device's name and memory figures in bytes, or None when the job is not on CUDA."""
    if device.type != "cuda" or not torch.cuda.is_initialized():
        return None
    free, total = torch.cuda.mem_get_info(device)
    return {"name": torch.cuda.get_device_name(device), "allocated": torch.cuda.memory_allocated(device),
            "peak": torch.cuda.max_memory_allocated(device), "total": total, "free": free}


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    # Said once by our own head; the CPU allocator's "[enforce fail at ...] err == 0." is noise.
    text = text.removeprefix("CUDA out of memory.").strip()
    return text.split("DefaultCPUAllocator: ", 1)[-1]


def describe(exc: BaseException, device: torch.device, precision: str = "fp32") -> str:
    """The job's failure reason: where it ran out, torch's account, and what it held."""
    advice = "use a smaller batch_size or model"
    usage = cuda_usage(device)
    if usage is None:
        return f"out of memory on the CPU: {_first_line(exc)}; {advice}"
    if precision == "fp32":
        advice += ", or precision bf16 (activations in half the memory)"
    return (f"CUDA out of memory on {usage['name']}: {_first_line(exc)}; memory: "
            f"{usage['allocated'] / GiB:.2f} GiB allocated by this job (peak {usage['peak'] / GiB:.2f} GiB) "
            f"of {usage['total'] / GiB:.2f} GiB ({usage['free'] / GiB:.2f} GiB free); {advice}")


def release() -> None:
    """Frees what the finished job left: unreachable objects, then the device's cached blocks."""
    gc.collect()
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()
