"""The loops bench/train_speed.py times against the engine, each as its users write it.

Every loop starts from the same seed and builds the same nn.Sequential with the same
initial weights (app/ml/build.py), so only the loop around the model differs.
"""
import logging
import warnings

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from app.ml.build import OPTIMIZER_CLASSES, build_loss, build_model, build_optimizer
from app.ml.spec import JobSpec


def targets(spec: JobSpec, y: np.ndarray) -> torch.Tensor:
    """Class indices for cross-entropy, else a float column, as the engine shapes them."""
    t = torch.as_tensor(y)
    return t if spec.loss.type == "cross_entropy" else t.unsqueeze(1)


def users_optimizer(spec: JobSpec, params) -> torch.optim.Optimizer:
    """`torch.optim.Adam(model.parameters(), lr=...)`: the spec's options, PyTorch's defaults
    for the rest, and so PyTorch's default implementation (a per-tensor loop on the CPU)."""
    options = spec.optimizer.model_dump(exclude={"type"})
    if "betas" in options:
        options["betas"] = tuple(options["betas"])
    return OPTIMIZER_CLASSES[spec.optimizer.type](params, **options)


def raw_loop(spec: JobSpec, x: np.ndarray, y: np.ndarray,
             device: torch.device) -> tuple[nn.Module, list[torch.Tensor]]:
    """A minimal loop that computes what the engine does (docs/equivalence.md): tensors on the
    device, index batches from the seeded generator, the engine's optimizer flags, no metrics."""
    t = spec.training
    torch.manual_seed(t.seed)
    model = build_model(spec.model, x.shape[1:]).to(device)
    loss_fn, opt = build_loss(spec.loss).to(device), build_optimizer(spec.optimizer, model.parameters())
    g = torch.Generator().manual_seed(t.seed)
    X, Y = torch.as_tensor(x).to(device), targets(spec, y).to(device)
    losses = []
    for _ in range(t.epochs):
        order = torch.randperm(len(X), generator=g).to(device)
        for i in range(0, len(X), t.batch_size):
            idx = order[i:i + t.batch_size]
            opt.zero_grad()
            loss = loss_fn(model(X[idx]), Y[idx])
            loss.backward()
            opt.step()
            losses.append(loss.detach())
    return model, losses


def idiomatic_loop(spec: JobSpec, x: np.ndarray, y: np.ndarray, device: torch.device) -> nn.Module:
    """The tutorials' loop: a shuffling DataLoader over a TensorDataset (pinned memory and
    non-blocking copies on a GPU), PyTorch's default optimizer, and loss.item() every step."""
    t = spec.training
    torch.manual_seed(t.seed)
    model = build_model(spec.model, x.shape[1:]).to(device)
    loss_fn, opt = build_loss(spec.loss).to(device), users_optimizer(spec, model.parameters())
    loader = DataLoader(TensorDataset(torch.as_tensor(x), targets(spec, y)), batch_size=t.batch_size,
                        shuffle=True, pin_memory=device.type == "cuda")
    for _ in range(t.epochs):
        for xb, yb in loader:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            _ = loss.item()  # what a progress print or a running average reads
    return model


def lightning_fit(spec: JobSpec, x: np.ndarray, y: np.ndarray, device: torch.device) -> nn.Module:
    """PyTorch Lightning's Trainer.fit on the same model and DataLoader as idiomatic_loop, with
    the loss logged by self.log and what a user timing training switches off: the progress
    bar, the model summary, checkpointing and the logger."""
    import lightning as L

    class Module(L.LightningModule):
        def __init__(self, model: nn.Module):
            super().__init__()
            self.model, self.loss_fn = model, build_loss(spec.loss)

        def training_step(self, batch, batch_idx):
            xb, yb = batch
            loss = self.loss_fn(self.model(xb), yb)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            return users_optimizer(spec, self.parameters())

    t = spec.training
    torch.manual_seed(t.seed)
    module = Module(build_model(spec.model, x.shape[1:]))
    loader = DataLoader(TensorDataset(torch.as_tensor(x), targets(spec, y)), batch_size=t.batch_size,
                        shuffle=True, pin_memory=device.type == "cuda")
    trainer = L.Trainer(max_epochs=t.epochs, accelerator="gpu" if device.type == "cuda" else "cpu",
                        devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(module, loader)
    return module.model


def quiet_lightning() -> None:
    """Lightning's start-up notes and its advice to add DataLoader workers would break the table
    (workers would only add process start-up for data that is already in memory)."""
    import lightning  # noqa: F401  (importing it sets its loggers' levels: quieten them after)

    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")
    warnings.filterwarnings("ignore", module="pytorch_lightning")
