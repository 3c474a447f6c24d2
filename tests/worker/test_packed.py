"""A pack's members train as their lone runs do: the same history and the same final weights,
bit for bit on the CPU (docs/equivalence.md), and a member that stops or diverges leaves alone."""
import numpy as np
import pytest
import torch

from app.ml.spec import JobSpec
from tests.direct_modes import DIRECT
from worker.training import Diverged, Hooks, Stopped, Trainer, checkpoint
from worker.training import direct as fast
from worker.training.packed import PackedTrainer

CPU = torch.device("cpu")
TIMING = ("epoch_seconds", "samples_per_second")  # wall-clock figures: not training's result


def data(n=150):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 64)).astype(np.float32)
    return x, (x[:, :10].argmax(axis=1)).astype(np.int64)


def spec(optimizer: dict, seed: int, **training) -> JobSpec:
    return JobSpec.model_validate({
        "dataset": "ds_test", "loss": {"type": "cross_entropy"},
        "model": {"layers": [{"type": "linear", "out_features": 128}, {"type": "relu"},
                             {"type": "linear", "out_features": 10}]},
        "optimizer": optimizer, "schedule": {"type": "step", "step_size": 2, "gamma": 0.5},
        "training": {"epochs": 4, "batch_size": 32, "log_every_steps": 1, "seed": seed,
                     "validation_split": 0.2, **training}})


# With one rate and no validation split the members share their fused optimizer calls
# (direct.update_together) and their batches' gather (the same training rows).
MEMBERS = {
    "adam, shared calls": [spec({"type": "adam", "lr": 3e-3}, seed, validation_split=0.0) for seed in (1, 2, 3, 4)],
    "sgd, shared calls": [spec({"type": "sgd", "lr": 0.05, "momentum": 0.9}, seed, validation_split=0.0)
                          for seed in (5, 6, 7, 8)],
    "sgd": [spec({"type": "sgd", "lr": lr, "momentum": 0.9}, seed) for seed in (1, 2) for lr in (0.1, 0.02)],
    "adam": [spec({"type": "adam", "lr": lr, "weight_decay": wd}, seed)
             for seed, (lr, wd) in zip((3, 4, 5, 6), ((1e-3, 0), (3e-3, 1e-4), (1e-2, 0), (1e-3, 1e-3)))],
}


class Recorder:
    def __init__(self, stop_at: int | None = None):
        self.points, self.stop_at = [], stop_at

    def hooks(self, **options) -> Hooks:
        return Hooks(flush=lambda points, epoch, step: self.points.extend(points), flush_seconds=0,
                     should_stop=lambda: self.stop_at is not None and self.points[-1]["step"] >= self.stop_at,
                     **options)

    def history(self) -> list[dict]:
        return [{k: v for k, v in p.items() if k not in TIMING} for p in self.points]


def lone(job: JobSpec, direct: bool):
    rec = Recorder()
    model = Trainer(job, *data(), CPU, rec.hooks(), direct=direct).run().model
    return rec.history(), model.state_dict()


@pytest.mark.parametrize("direct", DIRECT)
@pytest.mark.parametrize("kind", list(MEMBERS))
def test_each_member_equals_its_lone_run_bit_for_bit(kind, direct):
    recs = [Recorder() for _ in MEMBERS[kind]]
    trainers = [Trainer(job, *data(), CPU, r.hooks(), direct=direct) for job, r in zip(MEMBERS[kind], recs)]
    pack = PackedTrainer(trainers)
    outcomes = pack.run()
    if "shared" in kind:
        assert pack.shared is not None  # one gather for all members' batches
        if direct:  # their steps went through the shared fused call, which filled its cache
            assert all(t.optimizer in fast._LISTS for t in trainers)
    for i, job in enumerate(MEMBERS[kind]):
        history, weights = lone(job, direct)
        assert recs[i].history() == history  # every step's loss and lr, every epoch's metrics and norms
        packed = outcomes[i].model.state_dict()
        assert all(torch.equal(packed[name], w) for name, w in weights.items())
    assert len({r.history()[-1]["train_loss"] for r in recs}) == 4  # the members did differ


def test_a_member_that_stops_leaves_and_the_others_go_on():
    jobs = MEMBERS["sgd"]
    recs = [Recorder(stop_at=5 if i == 1 else None) for i in range(4)]
    outcomes = PackedTrainer([Trainer(j, *data(), CPU, r.hooks(), direct=True) for j, r in zip(jobs, recs)]).run()
    assert isinstance(outcomes[1], Stopped) and recs[1].points[-1]["step"] == 5
    for i in (0, 2, 3):
        assert recs[i].history() == lone(jobs[i], True)[0]


def test_a_diverging_member_fails_alone():
    jobs = [*MEMBERS["sgd"][:2], spec({"type": "sgd", "lr": 1e6, "momentum": 0.9}, 9)]
    recs = [Recorder() for _ in jobs]
    outcomes = PackedTrainer([Trainer(j, *data(), CPU, r.hooks(), direct=True) for j, r in zip(jobs, recs)]).run()
    assert isinstance(outcomes[2], Diverged)
    assert recs[0].history() == lone(jobs[0], True)[0] and recs[1].history() == lone(jobs[1], True)[0]


def test_members_resumed_from_checkpoints_at_different_steps_go_on_as_lone_retries():
    """A retry re-forms a pack whose members' checkpoints are at different steps (one after its
    epoch's last step, before the epoch's end): each goes on as its lone retry does."""
    jobs = MEMBERS["adam"][:3]
    blobs = []
    for job, stop in zip(jobs, (3, 4, 7)):  # 120 training rows, batch 32: 4 steps an epoch
        t = Trainer(job, *data(), CPU, Recorder(stop_at=stop).hooks(), direct=True)
        with pytest.raises(Stopped):
            t.run()
        blobs.append(checkpoint.to_bytes(t))

    def resumed(job, blob, rec):
        t = Trainer(job, *data(), CPU, rec.hooks(), direct=True)
        checkpoint.restore_bytes(t, blob)
        return t

    recs = [Recorder() for _ in jobs]
    outcomes = PackedTrainer([resumed(j, b, r) for j, b, r in zip(jobs, blobs, recs)]).run()
    for i, (job, blob) in enumerate(zip(jobs, blobs)):
        alone = Recorder()
        weights = resumed(job, blob, alone).run().model.state_dict()
        assert recs[i].history() == alone.history()
        assert all(torch.equal(outcomes[i].model.state_dict()[n], w) for n, w in weights.items())


def test_a_small_models_short_batches_forward_member_by_member_and_stay_exact():
    """4-16-3 at batch 6: CPU bmm's plain loop rounds otherwise than a lone Linear's BLAS mm (its
    history drifted 1e-5 relative within 4 epochs); such a step forwards member by member."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(70, 4)).astype(np.float32)
    y = (x[:, :3].argmax(axis=1)).astype(np.int64)

    def small(seed, lr):
        return JobSpec.model_validate({
            "dataset": "ds_test", "loss": {"type": "cross_entropy"},
            "model": {"layers": [{"type": "linear", "out_features": 16}, {"type": "relu"},
                                 {"type": "linear", "out_features": 3}]},
            "optimizer": {"type": "sgd", "lr": lr, "momentum": 0.9},
            "training": {"epochs": 6, "batch_size": 16, "log_every_steps": 1, "seed": seed}})

    jobs = [small(seed, lr) for seed in (1, 2) for lr in (0.1, 0.02)]
    recs = [Recorder() for _ in jobs]
    trainers = [Trainer(j, x, y, CPU, r.hooks(), direct=True) for j, r in zip(jobs, recs)]
    pack = PackedTrainer(trainers)
    assert pack.vmap_rows == 9  # 16 x 3 x 9 >= 400: the full batches of 16 are vmapped, the last of 6 not
    pack.run()
    for job, rec in zip(jobs, recs):
        alone = Recorder()
        Trainer(job, x, y, CPU, alone.hooks(), direct=True).run()
        assert rec.history() == alone.history()


def test_a_packed_members_checkpoint_holds_its_own_weights_not_the_packs():
    jobs = MEMBERS["sgd"]
    trainers = [Trainer(j, *data(), CPU, Recorder().hooks(), direct=True) for j in jobs]
    PackedTrainer(trainers)  # the members' weights are views of the stacked storage from here
    alone = Trainer(jobs[0], *data(), CPU, Recorder().hooks(), direct=True)
    assert len(checkpoint.to_bytes(trainers[0])) == len(checkpoint.to_bytes(alone))


@pytest.mark.parametrize("layers, loss, plain", [
    # Written out by _batched_forward: flatten over 8x8 rows, linear layers and tanh.
    ([{"type": "flatten"}, {"type": "linear", "out_features": 128}, {"type": "tanh"},
      {"type": "linear", "out_features": 10}], "cross_entropy", True),
    # log_softmax is not among them: vmap(functional_call) forwards it.
    ([{"type": "flatten"}, {"type": "linear", "out_features": 128}, {"type": "relu"},
      {"type": "linear", "out_features": 10}, {"type": "log_softmax"}], "nll", False),
])
def test_both_batched_forwards_compute_the_lone_bits(layers, loss, plain):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(100, 8, 8)).astype(np.float32)
    y = (x[:, 0, :].argmax(axis=1)).astype(np.int64)
    jobs = [JobSpec.model_validate({
        "dataset": "ds_test", "loss": {"type": loss}, "model": {"layers": layers},
        "optimizer": {"type": "adam", "lr": lr}, "training": {"epochs": 3, "batch_size": 32, "seed": seed,
                                                            "log_every_steps": 1}})
        for seed in (1, 2) for lr in (1e-3, 1e-2)]
    recs = [Recorder() for _ in jobs]
    pack = PackedTrainer([Trainer(j, x, y, CPU, r.hooks(), direct=True) for j, r in zip(jobs, recs)])
    assert pack.plain is plain
    pack.run()
    for job, rec in zip(jobs, recs):
        alone = Recorder()
        Trainer(job, x, y, CPU, alone.hooks(), direct=True).run()
        assert rec.history() == alone.history()
