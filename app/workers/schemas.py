from datetime import datetime
from typing import Literal

from pydantic import BaseModel


class WorkerRead(BaseModel):
    name: str
    host: str
    kind: Literal["gpu", "cpu"]
    device_index: int | None  # the physical GPU (CUDA_VISIBLE_DEVICES); null on a CPU worker
    device_name: str
    devices: int = 1  # GPUs it owns: a job with training.devices up to this many may run on it
    memory_bytes: int | None  # the GPU's memory, or the host's on a CPU worker
    queue: str
    status: Literal["online", "draining", "stopped", "offline"]  # offline: no heartbeat lately
    busy: bool
    # The job it trains, when the job is yours (another tenant's job shows only as busy).
    running_job_id: str | None
    started_at: datetime
    last_heartbeat_at: datetime


class WorkerList(BaseModel):
    items: list[WorkerRead]
    online: dict[str, int]  # online workers by kind: {"gpu": 2, "cpu": 0}
