"""Hand-built member histories for the study figure tests: 4 variants; pruned, failed, cancelled, running members."""
from app.studies.history import MemberHistory

# (variant, seed, status, val_loss per epoch, val_accuracy per epoch, epoch_seconds per epoch, wall_seconds)
# None marks a missing value; epochs are numbered from 1; every epoch is 4 steps, except adam seed 3's (5).
TABLE = [
    ("adam", 1, "succeeded", [0.9, 0.5, 0.3, 0.2], [0.6, 0.8, 0.9, 0.95], [0.1, 0.1, 0.1, 0.1], 1.0),
    ("adam", 2, "succeeded", [1.0, None, 0.45, 0.22], [0.55, 0.78, 0.88, 0.93], [0.2, 0.2, 0.2, 0.2], 1.5),
    ("adam", 3, "succeeded", [0.95, 0.55, 0.21, 0.25], [0.58, 0.79, 0.9, 0.94], [0.1, 0.15, 0.1, 0.15], 1.2),
    ("nesterov", 1, "succeeded", [1.0, 0.7, 0.5, 0.4], [0.5, 0.7, 0.8, 0.85], [0.1, 0.1, 0.1, 0.1], 0.9),
    ("nesterov", 2, "succeeded", [1.1, 0.8, 0.6, 0.45], [0.45, 0.65, 0.75, 0.8], [0.1, 0.1, 0.1, 0.1], 1.1),
    ("nesterov", 3, "pruned", [1.2, 0.9], [0.4, 0.5], [0.1, 0.1], 0.5),
    ("sgd", 1, "succeeded", [1.2, 1.0, 0.8, 0.7], [0.4, 0.5, 0.6, 0.65], [0.1, 0.1, 0.1, 0.1], 0.8),
    ("sgd", 2, "failed", [1.3, 1.1], [0.35, 0.45], [0.1, 0.1], 0.4),
    ("sgd", 3, "cancelled", [1.25], [0.38], [0.1], 0.3),
    ("rmsprop", 1, "running", [0.8, 0.1], [0.7, 0.99], [0.3, 0.3], None),
]


def member(variant: str, seed: int, status: str, val_loss: list, val_accuracy: list | None = None,
           seconds: list | None = None, wall: float | None = 1.0, steps_per_epoch: int = 4) -> MemberHistory:
    """A member whose epoch points carry these values (epoch 1, 2, ...)."""
    points = []
    for i, loss in enumerate(val_loss):
        epoch = i + 1
        points.append({"epoch": epoch, "step": epoch * steps_per_epoch, "train_loss": 2.0, "val_loss": loss,
                       "val_accuracy": val_accuracy[i] if val_accuracy else None, "lr": 0.01,
                       "epoch_seconds": seconds[i] if seconds else 0.1})
    return MemberHistory(job_id=f"job_{variant}_{seed}", variant=variant, seed=seed, status=status,
                         epochs=points, wall_seconds=wall)


def study() -> list[MemberHistory]:
    """Every member of TABLE, in TABLE's order."""
    return [member(v, seed, status, loss, acc, secs, wall, 5 if (v, seed) == ("adam", 3) else 4)
            for v, seed, status, loss, acc, secs, wall in TABLE]
