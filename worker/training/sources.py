"""What a job takes from other jobs, loaded by worker/attempt.py: the weights init.from_job copies
(app/ml/warm_start.py), and the teacher distill.teacher names (app/ml/distill.py)."""
from dataclasses import dataclass

import numpy as np
import torch

from app.ml.build import build_model
from app.ml.distill import teacher_outputs
from app.ml.preprocessing import apply_preprocessing
from app.ml.spec import ModelSpec


@dataclass(frozen=True)
class Teacher:
    model: ModelSpec
    input_shape: tuple[int, ...]
    state: dict[str, torch.Tensor]
    preprocessing: dict | None  # the teacher's own preprocessing.json: its inputs as it trained on them

    def outputs(self, x: np.ndarray, device: torch.device) -> torch.Tensor:
        """The teacher's outputs for the raw rows x, computed once at the start: every row seen as the
        teacher saw its own (its standardization, not the student's), on the job's device."""
        with torch.random.fork_rng(devices=[]):  # the build's init draws must not move the job's seeded RNG
            net = build_model(self.model, self.input_shape)
        net.load_state_dict(self.state)
        rows = apply_preprocessing(x, self.preprocessing) if self.preprocessing else np.asarray(x, np.float32)
        return teacher_outputs(net.to(device), torch.as_tensor(rows).to(device))


@dataclass(frozen=True)
class Sources:
    init_state: dict[str, torch.Tensor] | None = None  # init.from_job's weights
    teacher: Teacher | None = None
