"""The pre-flight of newton, levenberg_marquardt, conjugate_gradient and scaled_conjugate_gradient:
422s naming the field to change, with the figures, and nothing created."""
import pytest

from tests.e2e.helpers import blobs, errors_for, upload_npz

METHODS = ("newton", "levenberg_marquardt", "conjugate_gradient", "scaled_conjugate_gradient")


@pytest.fixture
def dataset(api):
    x, y = blobs(60)
    return upload_npz(api, x, y.astype("float32"))["id"]


def job(dataset, optimizer="newton", layers=None, **sections) -> dict:
    body = {"dataset": dataset, "loss": {"type": "mse"}, "optimizer": {"type": optimizer},
            "model": {"layers": layers or [{"type": "linear", "out_features": 6}, {"type": "tanh"},
                                           {"type": "linear", "out_features": 1}]},
            "training": {"epochs": 3, "batch_size": "full"}}
    body.update(sections)
    return body


def refused(api, body) -> dict[str, str]:
    before = api.get("/v1/jobs").json()
    r = api.post("/v1/jobs", json=body)
    assert r.status_code == 422, r.text
    assert api.get("/v1/jobs").json() == before
    return errors_for(r)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_plans_full_batch_and_refuses_batches(api, dataset, method):
    r = api.post("/v1/jobs", json=job(dataset, method), params={"dry_run": "true"})
    assert r.status_code == 200, r.text
    errors = refused(api, job(dataset, method, training={"epochs": 3, "batch_size": 16}))
    assert "full" in errors["training.batch_size"] and "16 of the 60 rows" in errors["training.batch_size"]


def test_levenberg_marquardt_needs_mse_and_no_penalty(api, dataset):
    body = job(dataset, "levenberg_marquardt", loss={"type": "huber"})
    assert "needs loss mse, not huber" in refused(api, body)["loss.type"]
    body = job(dataset, "levenberg_marquardt", regularization={"l2": 0.01})
    assert "l2" in refused(api, body)["regularization.l2"]


@pytest.mark.parametrize("method", ["levenberg_marquardt", "scaled_conjugate_gradient"])
def test_methods_that_choose_their_own_steps_refuse_a_schedule(api, dataset, method):
    body = job(dataset, method, schedule={"type": "step", "step_size": 1})
    assert "chooses every step's length" in refused(api, body)["schedule"]


@pytest.mark.parametrize("method", ["newton", "levenberg_marquardt"])
def test_curvature_methods_refuse_random_or_stateful_layers_and_clipping(api, dataset, method):
    drop = [{"type": "linear", "out_features": 6}, {"type": "dropout", "p": 0.2}, {"type": "linear", "out_features": 1}]
    assert "dropout" in refused(api, job(dataset, method, layers=drop))["model.layers[1]"]
    norm = [{"type": "residual", "layers": [{"type": "linear", "out_features": 4}, {"type": "batchnorm1d"}]},
            {"type": "linear", "out_features": 1}]
    assert "layernorm" in refused(api, job(dataset, method, layers=norm))["model.layers[0].layers[1]"]
    clip = job(dataset, method, regularization={"grad_clip": {"type": "norm", "max_norm": 1.0}})
    assert "clipping" in refused(api, clip)["regularization.grad_clip"]


def test_the_hessian_and_jacobian_must_fit_in_memory(api, dataset):
    wide = [{"type": "linear", "out_features": 5000}, {"type": "tanh"}, {"type": "linear", "out_features": 1}]
    n = 4 * 5000 + 5000 + 5000 + 1  # 30,001 parameters: a Hessian of 30,001² entries, 12 bytes each
    message = refused(api, job(dataset, "newton", layers=wide))["optimizer.type"]
    assert f"{n:,}² entries" in message and f"about {n * n * 12 / 2**30:.1f} GiB" in message
    assert "limit of 8.0 GiB" in message and "conjugate_gradient" in message
    # CG keeps vectors only: the same network plans.
    r = api.post("/v1/jobs", json=job(dataset, "conjugate_gradient", layers=wide), params={"dry_run": "true"})
    assert r.status_code == 200, r.text


def test_the_plan_counts_the_curvature_memory(api, dataset):
    newton = api.post("/v1/jobs", json=job(dataset, "newton"), params={"dry_run": "true"}).json()
    adam = api.post("/v1/jobs", json=job(dataset, "adam"), params={"dry_run": "true"}).json()
    n = 4 * 6 + 6 + 6 + 1
    assert newton["memory_bytes"] - adam["memory_bytes"] == n * n * 12


def test_reduced_precision_is_refused(api, dataset):
    body = job(dataset, "conjugate_gradient", training={"epochs": 2, "batch_size": "full", "precision": "bf16",
                                                         "device": "cuda"})
    assert "fp32" in refused(api, body)["training.precision"]
