"""Pre-flight: settings that are valid alone but not together name the field to change."""
import pytest

from app.ml.check import DatasetInfo, Limits, plan_job
from app.ml.errors import SpecError
from app.ml.spec import JobSpec

LIMITS = Limits(max_parameters=10**7, max_epochs=1000, max_steps=10**7, max_layers=100)
CLASSES = DatasetInfo(rows=100, feature_shape=(4,), target_shape=(), target_kind="integer",
                      target_min=0, target_max=2)


def job(**sections) -> JobSpec:
    body = {"dataset": "ds_test", "loss": {"type": "cross_entropy"},
            "model": {"layers": [{"type": "linear", "out_features": 8}, {"type": "relu"},
                                 {"type": "linear", "out_features": 3}]},
            "optimizer": {"type": "adam"}, "training": {"epochs": 10, "batch_size": 16}}
    for key, value in sections.items():
        body[key] = {**body[key], **value} if isinstance(body.get(key), dict) else value
    return JobSpec.model_validate(body)


REFUSED = [
    ({"optimizer": {"type": "lbfgs"}, "training": {"batch_size": 1}}, "training.batch_size", "lbfgs"),
    ({"schedule": {"type": "one_cycle", "max_lr": 0.1, "warmup": {"epochs": 2}}}, "schedule.warmup",
     "pct_start"),
    ({"schedule": {"type": "step", "step_size": 2, "warmup": {"epochs": 10}}}, "schedule.warmup.epochs",
     "no epochs"),
    ({"schedule": {"type": "reduce_on_plateau", "monitor": "val_loss"}}, "schedule.monitor",
     "validation"),
    ({"regularization": {"early_stopping": {"monitor": "val_accuracy"}}},
     "regularization.early_stopping.monitor", "validation"),
    ({"regularization": {"weight_clip": {"type": "clamp", "min": 1, "max": -1}}},
     "regularization.weight_clip.min", "below"),
    ({"loss": {"type": "cross_entropy", "weight": [1.0, 2.0]}}, "loss.weight", "2 class weights for 3"),
    ({"training": {"precision": "bf16", "device": "cpu"}}, "training.precision",
     "bf16 needs a GPU: on the CPU mixed precision is slower than fp32"),
    ({"training": {"precision": "fp16", "device": "cpu"}}, "training.precision", "fp16 needs a GPU"),
    ({"optimizer": {"type": "lbfgs"}, "training": {"batch_size": "full", "precision": "fp16"}},
     "training.precision", "fp16 cannot train with lbfgs"),
    ({"loss": {"type": "nll"}, "model": {"layers": [{"type": "linear", "out_features": 2},
                                                    {"type": "log_softmax"}]}}, "model.layers", "3 outputs"),
]


@pytest.mark.parametrize("sections, field, words", REFUSED, ids=[r[1] + "-" + r[2] for r in REFUSED])
def test_conflicting_settings_are_refused(sections, field, words):
    with pytest.raises(SpecError) as info:
        plan_job(job(**sections), CLASSES, LIMITS)
    assert info.value.field == field and words in info.value.message


def test_val_accuracy_needs_a_classification_loss():
    regression = DatasetInfo(rows=100, feature_shape=(4,), target_shape=(), target_kind="float",
                             target_min=-1, target_max=1)
    spec = job(loss={"type": "mse"}, training={"validation_split": 0.2},
               model={"layers": [{"type": "linear", "out_features": 1}]},
               regularization={"early_stopping": {"monitor": "val_accuracy"}})
    with pytest.raises(SpecError) as info:
        plan_job(spec, regression, LIMITS)
    assert "classification" in info.value.message


ACCEPTED_WITH_WARNING = [
    ({"schedule": {"type": "multistep", "milestones": [5, 50]}}, "never apply"),
    ({"schedule": {"type": "step", "step_size": 10}}, "never decays"),
    ({"regularization": {"early_stopping": {"monitor": "train_loss", "patience": 10}}}, "never stop early"),
    ({"loss": {"type": "nll"}}, "log_softmax"),
    ({"optimizer": {"type": "lbfgs"}, "training": {"batch_size": "full"},
      "model": {"layers": [{"type": "linear", "out_features": 3}, {"type": "dropout"}]}}, "dropout"),
    ({"optimizer": {"type": "rprop"}, "training": {"batch_size": 16}}, "rprop is meant for full-batch"),
]


@pytest.mark.parametrize("sections, words", ACCEPTED_WITH_WARNING, ids=[w for _, w in ACCEPTED_WITH_WARNING])
def test_doubtful_settings_are_accepted_with_a_warning(sections, words):
    plan = plan_job(job(**sections), CLASSES, LIMITS)
    assert any(words in w for w in plan.warnings), plan.warnings


def test_rprop_full_batch_is_fine():
    assert plan_job(job(optimizer={"type": "rprop"}, training={"batch_size": "full"}), CLASSES, LIMITS).warnings == []


def test_lbfgs_full_batch_and_plateau_on_train_loss_are_fine():
    plan = plan_job(job(optimizer={"type": "lbfgs"}, training={"batch_size": "full"},
                        schedule={"type": "reduce_on_plateau"}), CLASSES, LIMITS)
    assert plan.steps_per_epoch == 1 and plan.warnings == []


@pytest.mark.parametrize("training, optimizer", [
    ({"precision": "bf16", "device": "cuda"}, {"type": "adam"}),
    ({"precision": "fp16"}, {"type": "sgd", "lr": 0.1}),  # device auto: a GPU worker takes it
    ({"precision": "bf16", "batch_size": "full"}, {"type": "lbfgs"}),  # bf16 needs no scaler
    ({"precision": "fp32", "device": "cpu"}, {"type": "adam"}),
])
def test_precisions_that_can_train_are_accepted(training, optimizer):
    plan = plan_job(job(training=training, optimizer=optimizer), CLASSES, LIMITS)
    assert plan.warnings == []


def test_precision_is_in_the_published_schema():
    field = JobSpec.model_json_schema()["$defs"]["TrainingSpec"]["properties"]["precision"]
    assert field["enum"] == ["fp32", "bf16", "fp16"] and field["default"] == "fp32"
    assert "autocast" in field["description"]
