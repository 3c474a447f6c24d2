"""Warm start, freezing and distillation in the trainer (app/ml/warm_start.py, app/ml/distill.py)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from app.ml.build import build_model
from app.ml.distill import DistillationLoss
from app.ml.source_spec import Distill
from app.ml.spec import JobSpec
from tests.direct_modes import DIRECT
from worker.training import Hooks, train
from worker.training.loop import Trainer
from worker.training.sources import Sources, Teacher

CPU = torch.device("cpu")
LAYERS = [{"type": "linear", "out_features": 16}, {"type": "relu"}, {"type": "linear", "out_features": 3}]


def classes(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    return (rng.normal(size=(n, 4)) + 2 * y[:, None]).astype(np.float32), y.astype(np.int64)


def spec(layers=LAYERS, epochs=20, seed=1, optimizer=None, **sections) -> JobSpec:
    return JobSpec.model_validate({
        "dataset": "ds_test", "model": {"layers": layers}, "loss": {"type": "cross_entropy"},
        "optimizer": optimizer or {"type": "adam", "lr": 0.02},
        "training": {"epochs": epochs, "batch_size": 16, "seed": seed}, **sections})


def run(job, x, y, sources=None, direct=True):
    points = []
    result = train(job, x, y, CPU, Hooks(flush=lambda p, e, s: points.extend(p), flush_seconds=0),
                   direct=direct, sources=sources)
    return result, [p for p in points if p["kind"] == "epoch"]


def state_of(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("direct", DIRECT)
def test_a_warm_start_begins_where_its_source_ended(direct):
    x, y = classes()
    source, _ = run(spec(epochs=40), x, y, direct=direct)
    cold, cold_epochs = run(spec(epochs=1, seed=7), x, y, direct=direct)
    warm, warm_epochs = run(spec(epochs=1, seed=7, init={"from_job": "job_src"}), x, y,
                            Sources(init_state=state_of(source.model)), direct=direct)
    assert warm_epochs[0]["train_loss"] < 0.25 * cold_epochs[0]["train_loss"]


@pytest.mark.parametrize("direct", DIRECT)
def test_frozen_layers_stay_bit_for_bit_and_the_rest_train(direct):
    x, y = classes()
    source, _ = run(spec(epochs=3), x, y, direct=direct)
    src = state_of(source.model)
    # weight clipping and an l2 penalty act on weights: neither may touch a frozen layer
    job = spec(epochs=5, seed=3, init={"from_job": "job_src", "layers": ["layers[0]"], "freeze": ["layers[0]"]},
               regularization={"l2": 0.01, "weight_clip": {"type": "max_norm", "max_norm": 0.5}},
               optimizer={"type": "adamw", "lr": 0.05})
    trained, _ = run(job, x, y, Sources(init_state=src), direct=direct)
    after = trained.model.state_dict()
    assert torch.equal(after["0.weight"], src["0.weight"]) and torch.equal(after["0.bias"], src["0.bias"])
    assert not torch.equal(after["2.weight"], src["2.weight"])


def test_layers_not_copied_start_as_a_cold_start_s():
    x, y = classes()
    source, _ = run(spec(epochs=2), x, y)
    job = spec(epochs=1, seed=5, init={"from_job": "job_src", "layers": ["layers[2]"]})
    torch.manual_seed(5)
    fresh = build_model(job.model, (4,))  # what a cold start with this seed builds
    t = Trainer(job, x, y, CPU, Hooks(), sources=Sources(init_state=state_of(source.model)))
    assert torch.equal(t.model[0].weight, fresh[0].weight)  # seeded as before
    assert torch.equal(t.model[2].weight, source.model[2].weight)  # copied


def test_distillation_loss_is_the_formula():
    torch.manual_seed(0)
    s, t, labels = torch.randn(5, 3), torch.randn(5, 3), torch.tensor([0, 2, 1, 1, 0])
    T, alpha = 3.0, 0.3
    loss = DistillationLoss(torch.nn.CrossEntropyLoss(), Distill(teacher="job_t", temperature=T, alpha=alpha))
    p_t, p_s = (t / T).softmax(1), (s / T).softmax(1)
    kl = (p_t * (p_t.log() - p_s.log())).sum(1).mean()  # KL(teacher || student), per row, averaged
    ce = -(s.log_softmax(1)[torch.arange(5), labels]).mean()
    expected = alpha * T * T * kl + (1 - alpha) * ce
    assert torch.allclose(loss(s, (labels, t)), expected, atol=1e-6)
    only_labels = DistillationLoss(torch.nn.CrossEntropyLoss(), Distill(teacher="job_t", alpha=0.0))
    assert torch.allclose(only_labels(s, (labels, t)), F.cross_entropy(s, labels))


def test_a_distilled_student_trains_on_the_teacher_and_validates_on_the_spec_loss():
    x, y = classes()
    teacher_spec = spec(epochs=40, layers=[{"type": "linear", "out_features": 32}, {"type": "relu"},
                                           {"type": "linear", "out_features": 3}])
    teacher, _ = run(teacher_spec, x, y)
    student = [{"type": "linear", "out_features": 3}]
    teach = Teacher(model=teacher_spec.model, input_shape=(4,), state=state_of(teacher.model), preprocessing=None)
    job = JobSpec.model_validate(spec(epochs=3, seed=2, layers=student).model_dump() |
                                 {"distill": {"teacher": "job_t", "temperature": 2.0, "alpha": 1.0},
                                  "training": {"epochs": 3, "batch_size": 16, "seed": 2, "validation_split": 0.25}})
    plain = JobSpec.model_validate(job.model_dump() | {"distill": None})
    distilled, d_epochs = run(job, x, y, Sources(teacher=teach))
    _, p_epochs = run(plain, x, y)
    # alpha 1: the training loss is the soft term alone, not the cross entropy the validation reports
    assert d_epochs[0]["train_loss"] != pytest.approx(p_epochs[0]["train_loss"], rel=1e-3)
    # the validation loss is the spec's cross entropy, computed on the distilled model's outputs
    t = Trainer(job, x, y, CPU, Hooks(), sources=Sources(teacher=teach))
    with torch.no_grad():
        out = distilled.model(t.data.x_val)
    assert float(d_epochs[-1]["val_loss"]) == pytest.approx(float(F.cross_entropy(out, t.data.y_val)), rel=1e-5)
    # the teacher's outputs are computed once for the training rows, in their order
    assert torch.allclose(t.data.teacher_train, teacher.model.eval()(t.data.x_train), atol=1e-5)
