"""'Did you mean' (app/suggest.py): the allowed names found along pydantic's error location."""
import pytest
from pydantic import ValidationError

from app.errors import validation_errors
from app.ml.spec import JobSpec
from app.suggest import allowed_fields, closest

BASE = {"dataset": "ds", "model": {"layers": [{"type": "linear", "out_features": 3}]},
        "loss": {"type": "cross_entropy"}, "optimizer": {"type": "adam"}}


def errors(**changes) -> list[dict]:
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate({**BASE, **changes})
    return info.value.errors()


def test_the_walk_follows_lists_tags_and_nested_residual_blocks():
    residual = {"type": "residual", "layers": [{"type": "relu"}, {"type": "conv1d", "out_channels": 2,
                                                                    "kernel_size": 3, "strides": 2}]}
    [e] = errors(model={"layers": [residual]})
    assert e["loc"][-1] == "strides"
    assert set(allowed_fields(JobSpec, e["loc"])) == {"type", "out_channels", "kernel_size", "stride", "padding",
                                                      "dilation", "groups", "bias", "init"}
    assert validation_errors([e], model=JobSpec)[0]["message"].endswith("did you mean 'stride'?")


def test_the_walk_follows_a_tag_of_a_callable_discriminator():
    [e] = errors(dataset={"name": "moons", "nois": 0.1})  # DatasetRef's Tag("builtin-dataset"), then the name
    assert "noise" in allowed_fields(JobSpec, e["loc"]) and "type" not in allowed_fields(JobSpec, e["loc"])
    assert validation_errors([e], model=JobSpec)[0]["message"].endswith("did you mean 'noise'?")


def test_an_unknown_type_gets_the_closest_tag_without_a_model():
    [e] = errors(model={"layers": [{"type": "Dense", "out_features": 3}]})
    assert validation_errors([e])[0]["message"].endswith("did you mean 'linear'?")


def test_without_the_model_an_unknown_field_gets_no_guess():
    [e] = errors(optimizer={"type": "adam", "learning_rate": 0.1})
    assert validation_errors([e])[0]["message"] == "Extra inputs are not permitted, got 0.1"


@pytest.mark.parametrize("word, allowed, want", [
    ("learning_rate", ["type", "lr", "betas"], "lr"),
    ("units", ["type", "hidden_size"], "hidden_size"),  # Keras's name, mapped where it is allowed
    ("units", ["type", "lr"], None),
    ("EPOCHS", ["epochs", "seed"], "epochs"),
    ("colour", ["dataset", "model", "loss"], None),
])
def test_closest(word, allowed, want):
    assert closest(word, allowed) == want
