"""How many torch threads each worker's training processes use: the machine's cores, shared.

torch gives every process a thread per core. Two CPU workers on a 2-core machine would then
run 4 threads on 2 cores, and each job's matrix products would wait on the other's. So the
supervisor (worker/supervisor.py) gives each worker it starts an equal share of the cores
this process may run on, at least one, and the worker's processes set it as they start.
"""
import logging
import os

log = logging.getLogger(__name__)


def cores() -> int:
    """The cores this process may run on (its CPU affinity, as taskset or a container sets it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def share(workers: int, available: int | None = None) -> int:
    """Each of ``workers`` workers' threads: an equal share of the cores, at least 1."""
    return max(1, (available or cores()) // max(1, workers))


def rank_share(threads: int, ranks: int) -> int:
    """A CPU rank's torch threads (training.devices > 1): the worker's share divided among the job's
    ranks, at least 1; ``threads`` 0 (torch's default) shares the cores."""
    return max(1, (threads or cores()) // max(1, ranks))


def apply(threads: int) -> int:
    """Sets this process's torch thread count (0: torch's default, a thread per core); returns
    the count torch now uses, and logs it."""
    import torch

    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    used = torch.get_num_threads()
    log.info("training process %d: %d torch thread(s) of %d core(s)", os.getpid(), used, cores())
    return used
