"""What a training process would otherwise load on its first job, loaded before the pool forks.

A fresh training process spent about 1.3 s of its first job importing what PyTorch loads
lazily the first time a network runs on the meta device (the dry run behind build_model):
torch._dynamo, sympy, the decompositions. The worker's main process now pays that once,
and every training process it forks inherits the modules.

Only the meta device is used: no CPU kernel runs, so no intra-op thread pool starts. A
started pool does not survive a fork, and a training process forked after one would hang
(as a warm-up that trained a tiny job in the main process did).
"""
from app.ml import spec as S
from app.ml.shapes import dry_run, estimate

TINY = S.ModelSpec.model_validate({"layers": [{"type": "linear", "out_features": 2}, {"type": "relu"}]})


def warm_up() -> None:
    """Runs the dry run and the estimate of a tiny network on the meta device."""
    dry_run(TINY, (2,))
    estimate(TINY, (2,), 2)
