"""Checkpoints: a Trainer's whole state in one file, written atomically, read back without pickle.

Only tensors, numbers, strings and containers of them are written, so reading a
checkpoint uses ``torch.load(weights_only=True)``: no arbitrary objects are unpickled.
"""
import io

import numpy as np
import torch

from worker.training import state


def _numpy_state(s) -> dict:
    name, keys, pos, has_gauss, cached = s
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
            "has_gauss": has_gauss, "cached": cached}


def _from_numpy_state(d: dict):
    return d["name"], d["keys"].numpy().astype(np.uint32), d["pos"], d["has_gauss"], d["cached"]


def to_bytes(trainer) -> bytes:
    """The trainer's state, serialized; call it with every metric point up to now flushed."""
    snap = state.capture(trainer)
    snap["numpy_rng"] = _numpy_state(snap["numpy_rng"])
    snap["python_rng"] = list(snap["python_rng"][1]), snap["python_rng"][0], snap["python_rng"][2]
    snap["rollbacks"] = trainer.rollbacks
    buf = io.BytesIO()
    torch.save(snap, buf)
    return buf.getvalue()


def restore_bytes(trainer, data: bytes) -> int:
    """Puts a checkpoint into a freshly built Trainer of the same job; returns its step."""
    snap = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    snap["numpy_rng"] = _from_numpy_state(snap["numpy_rng"])
    internal, version, gauss = snap["python_rng"]
    snap["python_rng"] = (version, tuple(internal), gauss)
    device = trainer.device
    snap["epoch_loss"] = snap["epoch_loss"].to(device)
    if snap["order"] is not None:
        snap["order"] = snap["order"].to(device)
    state.restore(trainer, snap)
    trainer.rollbacks = snap["rollbacks"]
    return snap["step"]
