"""The dry run and the estimate come from one call, remembered per network, shape and batch size
(app/ml/shapes.py trace_network)."""
import pytest
import torch

from app.ml import shapes
from app.ml import spec as S
from app.ml.build import build_model
from app.ml.check import DatasetInfo, Limits, plan_job
from app.ml.errors import SpecError

LIMITS = Limits(max_parameters=10**9, max_epochs=10**6, max_steps=10**9, max_layers=1000)


def model(*layers) -> S.ModelSpec:
    return S.ModelSpec.model_validate({"layers": list(layers) or [
        {"type": "linear", "out_features": 16}, {"type": "relu"}, {"type": "linear", "out_features": 3}]})


def job(batch_size: int = 32) -> S.JobSpec:
    return S.JobSpec.model_validate({
        "dataset": "ds_x", "model": model().model_dump(), "loss": {"type": "cross_entropy"},
        "optimizer": {"type": "adam"}, "training": {"batch_size": batch_size}})


@pytest.fixture
def traces(monkeypatch):
    """Counts the layer builds (shapes._trace over model.layers) and starts with an empty cache."""
    shapes._trace_network.cache_clear()
    calls = []
    real = shapes._trace

    def counting(layers, shape, prefix):
        if prefix == "model.layers":
            calls.append(shape)
        return real(layers, shape, prefix)

    monkeypatch.setattr(shapes, "_trace", counting)
    yield calls
    shapes._trace_network.cache_clear()


def test_the_same_network_is_traced_once(traces):
    first = shapes.trace_network(model(), (4,), 32)
    again = shapes.trace_network(model(), [4], 32)  # an equal spec object, the shape as a list
    assert again == first and len(traces) == 1
    assert [r.output_shape for r in again.layers] == [(16,), (16,), (3,)]
    assert isinstance(again.layers, tuple)  # shared by every caller, so it cannot be changed


def test_another_shape_layer_or_batch_size_is_traced_anew(traces):
    shapes.trace_network(model(), (4,), 32)
    assert shapes.trace_network(model(), (5,), 32).layers[0].parameters == 5 * 16 + 16
    wider = model({"type": "linear", "out_features": 17}, {"type": "relu"},
                  {"type": "linear", "out_features": 3})
    assert shapes.trace_network(wider, (4,), 32).layers[0].output_shape == (17,)
    assert len(traces) == 3
    shapes.trace_network(model(), (4,), 64)
    assert len(traces) == 4


def test_the_estimate_is_per_batch_size(traces):
    at_32 = shapes.trace_network(model(), (4,), 32)
    at_64 = shapes.trace_network(model(), (4,), 64)
    assert at_64.layers == at_32.layers
    assert at_64.flops_per_step == 2 * at_32.flops_per_step and at_64.memory_bytes > at_32.memory_bytes


def test_a_network_that_fails_fails_every_time(traces):
    bad = model({"type": "conv2d", "out_channels": 4, "kernel_size": 3})  # on flat rows
    for _ in range(2):
        with pytest.raises(SpecError) as info:
            shapes.trace_network(bad, (4,), 32)
        assert info.value.field == "model.layers[0]"
    assert len(traces) == 2


def test_plan_job_builds_and_traces_a_new_network_once(traces):
    """The measured win: the pre-flight check of a new network builds its layers once for both
    the dry run and the estimate (plan_job for a 3-layer MLP: 7.2-7.5 -> 5.5-5.7 ms)."""
    data = DatasetInfo(rows=100, feature_shape=(4,), target_shape=(), target_kind="integer",
                       target_min=0, target_max=2)
    plan = plan_job(job(), data, LIMITS)
    assert len(traces) == 1
    assert plan.flops_per_step > 0 and plan.memory_bytes > 0 and plan.output_shape == (3,)
    plan_job(job(), data, LIMITS)  # a repeat is remembered
    assert len(traces) == 1
    plan_job(job(batch_size=10), data, LIMITS)
    assert len(traces) == 2


def test_the_estimate_equals_one_of_layers_that_never_ran(traces):
    """The estimate runs the layers the dry run already ran once; that gives what layers
    built for the estimate alone give."""
    shared = shapes.trace_network(model(), (4,), 32)
    with torch.device("meta"):
        fresh = build_model(model(), (4,))  # built from the dry run's reports, never run
    reports = shapes.dry_run(model(), (4,))
    assert shapes._estimate(reports, list(fresh), (4,), 32) == (shared.flops_per_step, shared.memory_bytes)
