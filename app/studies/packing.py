"""Which study members may train together in one process ("a pack"), and which pack each belongs to.

Pure: a spec's ``refusal`` (None: packable), its ``pack_key`` (members with equal keys train
together), and the conductor's rule for releasing them (``releasable``, ``slots``). The worker
claims the pack (worker/packs.py) and trains it (worker/training/packed.py): one forward and
backward over all members with torch.func.vmap, each member's own optimizer, schedule, data order,
metrics and checkpoints, so that each member's history is its lone run's (docs/equivalence.md).
"""
import hashlib
import json
from collections.abc import Callable, Sequence
from typing import TypeVar

from app.ml.regularization import Regularization
from app.ml.spec import JobSpec

# Layers without randomness or buffers whose forward, batched over members by torch.func.vmap,
# computes a lone run's bits (measured, docs/equivalence.md). Convolutions are not among them:
# vmap makes a member's convolution a group of one grouped convolution, another kernel.
LAYERS = frozenset({"linear", "flatten", "relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh", "softmax",
                    "log_softmax", "identity"})
# First-order optimizers: one gradient a step, so one shared backward serves every member.
OPTIMIZERS = frozenset({"sgd", "adam", "adamw", "adamax", "nadam", "radam", "rmsprop", "adagrad", "adadelta",
                        "rprop"})
# What may differ between the members of one pack: each member's optimizer and seed have them.
PER_MEMBER_OPTIMIZER = ("lr", "weight_decay", "momentum")

T = TypeVar("T")  # a member: a Job row, or anything the caller keys


def refusal(spec: JobSpec) -> str | None:
    """Why a member with this spec trains alone, or None when it may be packed."""
    layers = sorted({layer.type for layer in spec.model.layers} - LAYERS)
    if layers:
        return f"model.layers: {', '.join(layers)} cannot be packed (only linear layers and activations)"
    if spec.optimizer.type not in OPTIMIZERS:
        return f"optimizer.type: {spec.optimizer.type} is not a first-order optimizer"
    if spec.training.precision != "fp32":
        return f"training.precision: {spec.training.precision} (packs train in fp32)"
    if spec.training.devices > 1:
        return f"training.devices: {spec.training.devices} (a data parallel member trains alone, on its ranks)"
    if spec.training.on_divergence != "fail":
        return "training.on_divergence: rollback rewinds one member, not its pack"
    if spec.regularization != Regularization():
        return "regularization: penalties, clipping and early stopping are not packed"
    if spec.init is not None or spec.distill is not None:
        return "init/distill: a member that starts from or learns from another job trains alone"
    return None


def pack_key(spec: JobSpec) -> str:
    """The spec's hash without the per-member fields (training.seed, the optimizer's lr,
    weight_decay and momentum): members with equal keys differ in nothing else."""
    data = spec.model_dump(mode="json")
    data["training"].pop("seed")
    for name in PER_MEMBER_OPTIMIZER:
        data["optimizer"].pop(name, None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32]


def refusal_of(spec: dict) -> str | None:
    """A stored job spec's refusal (None: packable)."""
    return refusal(JobSpec.model_validate(spec))


def key_of(spec: dict) -> str | None:
    """A stored job spec's pack key, or None when it trains alone."""
    checked = JobSpec.model_validate(spec)
    return None if refusal(checked) else pack_key(checked)


def releasable(held: Sequence[T], room: int, key: Callable[[T], str | None], max_members: int) -> list[T]:
    """The held members to release into ``room`` free slots, in order: a packable member takes
    with it up to ``max_members`` - 1 later held members of its key, and they count as one slot."""
    out: list[T] = []
    left = list(held)
    while left and room > 0:
        first, keyed = left[0], key(left[0])
        group = [first] if keyed is None else [m for m in left if key(m) == keyed][:max(max_members, 1)]
        out += group
        left = [m for m in left if m not in group]
        room -= 1
    return out


def slots(active: Sequence[T], key: Callable[[T], str | None], pack: Callable[[T], str | None],
          max_members: int) -> int:
    """The study's slots the non-held active members take: one a running pack (``pack``: its
    id, None for a member not running in one), one a lone member, and one per ``max_members``
    waiting members of one key (a pack about to form)."""
    packs, waiting, alone = set(), {}, 0
    for m in active:
        if pack(m) is not None:
            packs.add(pack(m))
        elif (k := key(m)) is not None:
            waiting[k] = waiting.get(k, 0) + 1
        else:
            alone += 1
    size = max(max_members, 1)
    return len(packs) + alone + sum(-(-n // size) for n in waiting.values())
