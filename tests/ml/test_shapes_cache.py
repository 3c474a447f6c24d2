"""The dry run and the estimate are remembered per network and shapes (app/ml/shapes.py)."""
import pytest

from app.ml import shapes
from app.ml import spec as S
from app.ml.errors import SpecError


def model(*layers) -> S.ModelSpec:
    return S.ModelSpec.model_validate({"layers": list(layers) or [
        {"type": "linear", "out_features": 16}, {"type": "relu"}, {"type": "linear", "out_features": 3}]})


@pytest.fixture
def traces(monkeypatch):
    """Counts the layer builds (shapes._trace over model.layers) and starts with empty caches."""
    shapes._dry_run.cache_clear()
    shapes._estimate.cache_clear()
    calls = []
    real = shapes._trace

    def counting(layers, shape, prefix):
        if prefix == "model.layers":
            calls.append(shape)
        return real(layers, shape, prefix)

    monkeypatch.setattr(shapes, "_trace", counting)
    yield calls
    shapes._dry_run.cache_clear()
    shapes._estimate.cache_clear()


def test_the_same_network_is_traced_once(traces):
    first = shapes.dry_run(model(), (4,))
    again = shapes.dry_run(model(), [4])  # an equal spec object, the shape as a list
    assert again == first and len(traces) == 1
    assert [r.output_shape for r in again] == [(16,), (16,), (3,)]
    again.append("not shared")  # a caller's list is its own
    assert len(shapes.dry_run(model(), (4,))) == 3


def test_another_shape_or_layer_is_traced_anew(traces):
    shapes.dry_run(model(), (4,))
    assert shapes.dry_run(model(), (5,))[0].parameters == 5 * 16 + 16
    wider = model({"type": "linear", "out_features": 17}, {"type": "relu"},
                  {"type": "linear", "out_features": 3})
    assert shapes.dry_run(wider, (4,))[0].output_shape == (17,)
    assert len(traces) == 3


def test_the_estimate_is_remembered_per_batch_size(traces):
    flops_32, memory_32 = shapes.estimate(model(), (4,), 32)
    assert shapes.estimate(model(), (4,), 32) == (flops_32, memory_32) and len(traces) == 1
    flops_64, memory_64 = shapes.estimate(model(), (4,), 64)
    assert len(traces) == 2
    assert flops_64 == 2 * flops_32 and memory_64 > memory_32


def test_a_network_that_fails_fails_every_time(traces):
    bad = model({"type": "conv2d", "out_channels": 4, "kernel_size": 3})  # on flat rows
    for _ in range(2):
        with pytest.raises(SpecError) as info:
            shapes.dry_run(bad, (4,))
        assert info.value.field == "model.layers[0]"
    assert len(traces) == 2


def test_the_estimate_after_a_dry_run_uses_the_layers_it_built(traces):
    """plan_job's order: a new network is built and traced once for both, and the estimate
    is what layers built for it alone give."""
    shapes.dry_run(model(), (4,))
    shared = shapes.estimate(model(), (4,), 32)
    assert len(traces) == 1
    shapes.estimate(model(), (4,), 64)  # the dry run's layers went to the first estimate
    assert len(traces) == 2
    shapes._estimate.cache_clear()
    assert shapes.estimate(model(), (4,), 32) == shared and len(traces) == 3
