"""What a training process would otherwise load on its first job, loaded before the pool forks.

A fresh training process spent about 1.3 s of its first job importing what PyTorch loads
lazily the first time a network runs on the meta device (the dry run behind build_model):
torch._dynamo, sympy, the decompositions. The worker's main process now pays that once,
and every training process it forks inherits the modules.

Then everything loaded so far is frozen out of the garbage collector (gc.freeze, as
Python's documentation advises before a fork): a training process's full collections
no longer walk the half million objects of torch and the rest, and leave their pages
shared with the parent.

No thread may start here (app/ml/warmup.py runs on the meta device only): a thread pool
does not survive a fork, and a training process forked after one would hang.
"""
import gc

from app.ml.warmup import run_tiny_network


def warm_up() -> None:
    """Runs the dry run and the estimate of a tiny network, then freezes what is loaded."""
    run_tiny_network()
    gc.collect()
    gc.freeze()
