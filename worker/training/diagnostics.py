"""What an epoch's point reports beyond the training loss: the validation metrics, and the
gradient and parameter norms per layer. Values stay tensors until the flush reads them."""
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
from torch import nn

EVAL_CHUNK = 8192
CLASSIFICATION = ("cross_entropy", "nll", "bce_with_logits")


def layer_norms(model: nn.Module, of_grads: bool) -> dict[str, torch.Tensor]:
    """L2 norm per top-level layer ("layers[i]") of its gradients or parameters, plus "total"."""
    groups: dict[str, list[torch.Tensor]] = {}
    for name, p in model.named_parameters():
        t = p.grad if of_grads else p
        if t is not None:
            groups.setdefault(f"layers[{name.split('.')[0]}]", []).append(t.detach())
    if not groups:
        return {}
    # get_total_norm: the norm of the tensors' norms, one foreach kernel per device and dtype.
    out = {k: nn.utils.get_total_norm(ts) for k, ts in groups.items()}
    out["total"] = torch.stack(list(out.values())).norm()
    return out


def norms(model: nn.Module, grads: dict) -> dict:
    """The epoch point's norms: ``grads`` (the last step's, before clipping) and the weights'."""
    params = layer_norms(model, of_grads=False)
    return {"grad_norm": grads.pop("total", None), "grad_norms": grads,
            "param_norm": params.pop("total", None), "param_norms": params}


def class_of(targets: torch.Tensor) -> torch.Tensor:
    """Each row's class: the index label, or the argmax of a probability (or one-hot) row; a tie
    goes to the first of the tied classes, as torch.argmax breaks it."""
    return targets.argmax(dim=1) if targets.ndim == 2 else targets


def evaluate(model: nn.Module, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_type: str,
             autocast: Callable[[], AbstractContextManager]) -> dict:
    """The validation loss (and accuracy for classification losses), in chunks, without gradients."""
    model.eval()
    total = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device)
    with torch.no_grad():
        for i in range(0, len(x), EVAL_CHUNK):
            with autocast():  # validation sees the model as training runs it
                out, yb = model(x[i:i + EVAL_CHUNK]), y[i:i + EVAL_CHUNK]
                chunk_loss = loss_fn(out, yb)
            total += chunk_loss * len(yb)
            if loss_type in ("cross_entropy", "nll"):
                correct += (out.argmax(dim=1) == class_of(yb)).sum()
            elif loss_type == "bce_with_logits":
                correct += ((out > 0) == (yb > 0.5)).float().mean(dim=1).sum()
    model.train()
    point = {"val_loss": total / len(x)}
    if loss_type in CLASSIFICATION:
        point["val_accuracy"] = correct / len(x)
    return point
