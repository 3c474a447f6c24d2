"""Knowledge distillation (Hinton, Vinyals and Dean 2015, "Distilling the knowledge in a neural network").

The student trains on

    loss = alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * the spec's loss

alpha weighs the teacher: 1 learns from the teacher's softened outputs only, 0 from the labels only.
T^2 keeps the soft term's gradients on the scale of the hard term's as T changes (the paper's
section 2). KL is summed over classes and averaged over the batch. The validation loss stays
the spec's loss, so a distilled job's val_loss compares with any other job's.
"""
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from app.ml import spec as S
from app.ml.errors import SpecError
from app.ml.shapes import dry_run
from app.ml.source_spec import Distill
from app.ml.warm_start import SourceJob

# A teacher's outputs must be class scores: logits (cross_entropy) or log-probabilities (nll),
# whose softmax is the same distribution.
TEACHER_LOSSES = ("cross_entropy", "nll")


class DistillationLoss(nn.Module):
    """The loss above; its target is (the spec's targets, the teacher's outputs for the batch)."""

    def __init__(self, base: nn.Module, distill: Distill):
        super().__init__()
        self.base, self.temperature, self.alpha = base, distill.temperature, distill.alpha

    def forward(self, student: torch.Tensor, target: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        labels, teacher = target
        t = self.temperature
        soft = F.kl_div(F.log_softmax(student / t, dim=1), F.log_softmax(teacher / t, dim=1),
                        reduction="batchmean", log_target=True)
        return self.alpha * t * t * soft + (1 - self.alpha) * self.base(student, labels)


def check_distill(spec: S.JobSpec, feature_shape: Sequence[int], out: Sequence[int], teacher: SourceJob) -> None:
    """Raises SpecError naming distill.teacher (or loss.type) when the teacher cannot teach this model."""
    if spec.loss.type != "cross_entropy":
        raise SpecError("loss.type", f"distillation trains a cross_entropy student, but the loss is {spec.loss.type}")
    src = teacher.job_id
    if teacher.loss_type not in TEACHER_LOSSES:
        raise SpecError("distill.teacher", f"{src} trained with {teacher.loss_type}; a teacher's outputs must be "
                                           "class scores, from a cross_entropy or nll job")
    if tuple(teacher.input_shape) != tuple(feature_shape):
        raise SpecError("distill.teacher", f"{src} takes rows of shape {list(teacher.input_shape)}, but this "
                                           f"dataset's rows are {list(feature_shape)}")
    theirs = dry_run(teacher.model, tuple(teacher.input_shape))[-1].output_shape
    if tuple(theirs) != tuple(out):
        raise SpecError("distill.teacher", f"{src} gives outputs of shape {list(theirs)}, but this model gives "
                                           f"{list(out)}; the student needs one output per teacher output")


@torch.no_grad()
def teacher_outputs(teacher: nn.Module, x: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """The teacher's outputs for every row, in eval mode, without gradients, in float32."""
    teacher.eval()
    return torch.cat([teacher(x[i:i + chunk]).float() for i in range(0, len(x), chunk)])
