"""Validation accuracy (worker/training/diagnostics.py evaluate): the argmax of the output
against the class of each target row: its index label, or the argmax of a probability row."""
import contextlib

import torch
from torch import nn

from worker.training.diagnostics import evaluate


class Fixed(nn.Module):
    """Answers the same logits whatever the input: the accuracy is then known by hand."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits[: len(x)]


# Predicted classes 2, 0, 1, 1.
LOGITS = torch.tensor([[0.1, 0.2, 3.0], [2.0, 0.0, -1.0], [0.0, 1.5, 1.0], [0.3, 0.9, 0.2]])
X = torch.zeros(4, 1)


def run(y, loss="cross_entropy"):
    return evaluate(Fixed(LOGITS), nn.CrossEntropyLoss(), X, y, loss, contextlib.nullcontext)


def test_soft_label_rows_count_their_argmax():
    # Row classes 2, 1, 1, 0 (rows 0 and 2 right): 0.5, where comparing the rows to the index
    # would fail or broadcast.
    y = torch.tensor([[0.1, 0.2, 0.7], [0.2, 0.6, 0.2], [0.3, 0.4, 0.3], [0.5, 0.25, 0.25]])
    point = run(y)
    assert point["val_accuracy"].item() == 0.5
    assert torch.allclose(point["val_loss"], nn.CrossEntropyLoss()(LOGITS, y))


def test_one_hot_rows_score_as_their_index_labels():
    labels = torch.tensor([2, 0, 0, 1])  # 3 of 4 right
    one_hot = nn.functional.one_hot(labels, 3).float()
    assert run(one_hot)["val_accuracy"].item() == run(labels)["val_accuracy"].item() == 0.75
    # Without label smoothing the loss is the same, to rounding, as PyTorch says.
    assert torch.allclose(run(one_hot)["val_loss"], run(labels)["val_loss"])


def test_a_tied_row_goes_to_its_first_class():
    y = torch.tensor([[0.5, 0.0, 0.5], [0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.0, 0.5, 0.5]])  # 0, 0, 1, 1
    assert run(y)["val_accuracy"].item() == 0.75  # to the last tied class (2, 1, 2, 2) it would be 0.25
