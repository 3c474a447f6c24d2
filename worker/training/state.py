"""Everything that decides what training does next, captured and put back.

Used to roll back after a divergence. Restoring a capture and going on computes
exactly what the uninterrupted run would have from that point: the model, the
optimizer and schedule, fp16's loss scale, the data order (the job's generator and the
epoch's permutation), the random number generators dropout draws from, and the loop's place.
"""
import copy
import random

import numpy as np
import torch


def capture(trainer) -> dict:
    t = trainer
    return {
        "epoch": t.epoch, "batch": t.batch, "step": t.step,
        "order": None if t.order is None else t.order.clone(),
        "epoch_loss": t.epoch_loss.clone(), "epoch_seconds": t.epoch_seconds,
        "model": _own(t.model.state_dict()),
        "optimizer": copy.deepcopy(t.optimizer.state_dict()),
        "scheduler": copy.deepcopy(t.scheduler.state_dict()),
        "stopper": None if t.stopper is None else copy.deepcopy(t.stopper.state_dict()),
        # The scale and its growth counter decide which later steps are skipped (plain numbers).
        "scaler": None if t.scaler is None else t.scaler.state_dict(),
        "generator": t.gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy_rng": np.random.get_state(),
        "python_rng": random.getstate(),
    }


def _own(state_dict: dict) -> dict:
    """The state dict with tensors of their own: a packed member's weights are views of its pack's
    stacked storage (worker/training/packed.py), which a deepcopy or torch.save would copy whole."""
    own = copy.copy(state_dict)  # keeps the OrderedDict's _metadata, which load_state_dict reads
    for name, tensor in own.items():
        own[name] = tensor.clone()
    return own


def restore(trainer, state: dict) -> None:
    t = trainer
    t.epoch, t.batch, t.step = state["epoch"], state["batch"], state["step"]
    t.order = None if state["order"] is None else state["order"].clone()
    t.epoch_loss, t.epoch_seconds = state["epoch_loss"].clone(), state["epoch_seconds"]
    t.model.load_state_dict(state["model"])
    t.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
    t.scheduler.load_state_dict(copy.deepcopy(state["scheduler"]))
    if t.stopper is not None:
        t.stopper.load_state_dict(copy.deepcopy(state["stopper"]))
    if t.scaler is not None and state.get("scaler"):  # checkpoints from before precision have none
        t.scaler.load_state_dict(state["scaler"])
    t.gen.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] is not None:
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    np.random.set_state(state["numpy_rng"])
    random.setstate(state["python_rng"])
