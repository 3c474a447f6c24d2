"""A tiny network's dry run and estimate, on the meta device: what a process would otherwise
load lazily on its first job (torch._dynamo, sympy, the decompositions: about 1 s).

Only the meta device is used: no CPU kernel runs, so no intra-op thread pool starts (a
started pool does not survive a fork).
"""
from app.ml import spec as S
from app.ml.shapes import trace_network

TINY = S.ModelSpec.model_validate({"layers": [{"type": "linear", "out_features": 2}, {"type": "relu"}]})


def run_tiny_network() -> None:
    trace_network(TINY, (2,), 2)
