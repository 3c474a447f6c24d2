"""The study routes without a worker: members made and held, every member checked before anything is
stored (errors naming the request's field), limits, the member jobs in /v1/jobs, cancel, delete, reads,
curves and the event stream of a study that has not trained."""
import pytest

from app.client import parse_sse
from tests.e2e.helpers import blobs, errors_for, mlp_spec, upload_npz

VARIANTS = [
    {"label": "sgd", "set": {"optimizer": {"type": "sgd", "lr": 0.1}}},
    {"label": "nesterov", "set": {"optimizer": {"type": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True}}},
    {"label": "adam", "set": {"optimizer": {"type": "adam", "lr": 0.01}}},
]


@pytest.fixture
def dataset(api) -> dict:
    x, y = blobs(100)
    return upload_npz(api, x, y)


def study(dataset_id: str, **fields) -> dict:
    return {"name": "optimizers", "base": mlp_spec(dataset_id, epochs=3), "variants": VARIANTS, "seeds": [1, 2],
            "objective": {"metric": "val_loss", "target": 0.5}, **fields}


def stored(api) -> tuple[int, int]:
    return api.get("/v1/studies").json()["total"], api.get("/v1/jobs").json()["total"]


def test_a_study_stores_one_job_per_variant_and_seed_and_queues_only_what_may_run(api, dataset):
    r = api.post("/v1/studies", json=study(dataset["id"], parallel=2))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "running" and body["kind"] == "variants" and body["planned"] == 6
    assert [(m["variant"], m["seed"]) for m in body["members"]] == [
        ("sgd", 1), ("nesterov", 1), ("adam", 1), ("sgd", 2), ("nesterov", 2), ("adam", 2)]
    # Two slots: the sgd members of both seeds pack together (app/studies/packing.py) and take
    # one, the nesterov ones the other; adam waits.
    assert [m["status"] for m in body["members"]] == ["queued", "queued", "held"] * 2
    assert body["counts"] == {"queued": 4, "held": 2}
    assert body["leaderboard"]["winner"] is None and len(body["leaderboard"]["rows"]) == 3

    jobs = api.get("/v1/jobs", params={"study_id": body["id"]}).json()
    assert jobs["total"] == 6
    assert {(j["variant"], j["study_id"]) for j in jobs["items"]} == {(v["label"], body["id"]) for v in VARIANTS}
    nesterov = next(m for m in body["members"] if m["variant"] == "nesterov" and m["seed"] == 2)
    spec = api.get(f"/v1/jobs/{nesterov['job_id']}/spec").json()["spec"]
    # The variant's optimizer replaced the base's; the seed came from seeds.
    assert spec["optimizer"] == {"type": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True,
                                 "dampening": 0.0, "weight_decay": 0.0}
    assert spec["training"]["seed"] == 2 and spec["training"]["epochs"] == 3
    held = api.get(f"/v1/jobs/{body['members'][-1]['job_id']}").json()
    assert held["status"] == "held" and held["waiting_reason"].startswith("held: its study")


def test_an_override_of_the_same_type_merges_and_a_dotted_path_sets_one_value(api, dataset):
    variants = [{"label": "slow", "set": {"optimizer": {"lr": 0.001}}}, {"label": "wide", "set": {
        "model.layers.0.out_features": 64}}]
    r = api.post("/v1/studies", json=study(dataset["id"], variants=variants, seeds=[]))
    assert r.status_code == 201, r.text
    specs = {m["variant"]: api.get(f"/v1/jobs/{m['job_id']}/spec").json()["spec"] for m in r.json()["members"]}
    assert specs["slow"]["optimizer"]["momentum"] == 0.9 and specs["slow"]["optimizer"]["lr"] == 0.001
    assert specs["wide"]["model"]["layers"][0]["out_features"] == 64
    assert specs["wide"]["training"]["seed"] == 3  # no seeds: the base's
    assert r.json()["members"][1]["params"] == {"model.layers[0].out_features": 64}


def test_a_grid_is_crossed_with_the_variants_and_labelled_by_its_values(api, dataset):
    r = api.post("/v1/studies", json=study(dataset["id"], variants=VARIANTS[:2], seeds=[0],
                                           grid={"optimizer.lr": [0.1, 0.01], "training.batch_size": [8, "full"]}))
    assert r.status_code == 201, r.text
    labels = [m["variant"] for m in r.json()["members"]]
    assert len(labels) == 8 and labels[0] == "sgd / optimizer.lr=0.1, training.batch_size=8"
    assert labels[-1] == "nesterov / optimizer.lr=0.01, training.batch_size=full"


@pytest.mark.parametrize("change, field, words", [
    ({"variants": [VARIANTS[0], {"label": "bad", "set": {"optimizer": {"type": "sgd", "lr": -1}}}]},
     "variants[1].set.optimizer.lr", "greater than 0"),
    ({"variants": [{"label": "x", "set": {"optimizer.momentum": -0.5}}]}, "variants[0].set.optimizer.momentum",
     "greater than or equal to 0"),
    ({"grid": {"optimizer.lr": [0.1, 0]}}, "grid.optimizer.lr[1]", "greater than 0"),
    ({"variants": [{"label": "deep", "set": {"model.layers.7.out_features": 4}}]},
     "variants[0].set.model.layers.7.out_features", "no item 7"),
    ({"variants": [{"label": "huge", "set": {"training.batch_size": 0}}]}, "variants[0].set.training.batch_size",
     "positive integer"),
    ({"seeds": [1, 1]}, "body", "unique"),
    ({"objective": {"metric": "val_accuracy"}, "base": {**mlp_spec("x"), "loss": {"type": "mse"}}}, None, None),
])
@pytest.mark.services
def test_a_bad_member_is_a_422_naming_where_the_request_set_it_and_stores_nothing(api, dataset, change, field,
                                                                                 words):
    before = stored(api)
    body = study(dataset["id"], **change)
    if field is None:  # a base whose dataset is wrong: named once, in base
        field, words = "base.dataset", "no dataset 'x'"
    r = api.post("/v1/studies", json=body)
    assert r.status_code == 422, r.text
    found = errors_for(r)
    assert field in found, found
    assert words in found[field], found
    assert stored(api) == before


def test_a_mistake_in_the_base_is_reported_once_not_once_per_member(api, dataset):
    base = mlp_spec(dataset["id"], epochs=3)
    base["model"]["layers"][2]["out_features"] = 0
    r = api.post("/v1/studies", json=study(dataset["id"], base=base))
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["base.model.layers[2].out_features"]


def test_the_objective_must_be_reported_by_every_member(api, dataset):
    no_validation = mlp_spec(dataset["id"], epochs=3, validation_split=0.0)
    r = api.post("/v1/studies", json=study(dataset["id"], base=no_validation))
    assert r.status_code == 422
    assert "needs validation data" in errors_for(r)["objective.metric"]
    r = api.post("/v1/studies", json=study(dataset["id"], objective={"metric": "train_loss"}, base=no_validation))
    assert r.status_code == 201, r.text
    assert r.json()["objective"] == {"metric": "train_loss", "mode": "min", "target": None}


def test_a_study_over_the_member_limit_is_refused_with_the_limit(api, dataset):
    before = stored(api)
    r = api.post("/v1/studies", json=study(dataset["id"], grid={"optimizer.lr": [0.1 / (i + 1) for i in range(40)]}))
    assert r.status_code == 422
    assert "240 members" in errors_for(r)["grid"] and "limit of 200" in errors_for(r)["grid"]
    assert stored(api) == before


@pytest.mark.services
def test_cancel_ends_every_member_and_the_study(api, dataset):
    created = api.post("/v1/studies", json=study(dataset["id"], parallel=1)).json()
    r = api.post(f"/v1/studies/{created['id']}/cancel")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled" and r.json()["finished_at"]
    assert r.json()["counts"] == {"cancelled": 6}
    assert api.post(f"/v1/studies/{created['id']}/cancel").status_code == 409
    assert api.get("/v1/studies", params={"status": "cancelled"}).json()["items"][0]["id"] == created["id"]


@pytest.mark.services
def test_delete_refuses_a_running_study_then_removes_it_with_its_members(api, dataset):
    created = api.post("/v1/studies", json=study(dataset["id"])).json()
    r = api.delete(f"/v1/studies/{created['id']}")
    assert r.status_code == 409 and "cancel it first" in r.json()["detail"]
    api.post(f"/v1/studies/{created['id']}/cancel")
    assert api.delete(f"/v1/studies/{created['id']}").status_code == 204
    assert api.get(f"/v1/studies/{created['id']}").status_code == 404
    assert api.get("/v1/jobs", params={"study_id": created["id"]}).json()["total"] == 0
    assert api.get(f"/v1/jobs/{created['members'][0]['job_id']}").status_code == 404


def test_another_tenant_sees_no_study(api, other_api, dataset):
    created = api.post("/v1/studies", json=study(dataset["id"])).json()
    for path in ("", "/curves", "/events"):
        assert other_api.get(f"/v1/studies/{created['id']}{path}").status_code == 404
    assert other_api.post(f"/v1/studies/{created['id']}/cancel").status_code == 404
    assert other_api.delete(f"/v1/studies/{created['id']}").status_code == 404
    assert other_api.get("/v1/studies").json()["total"] == 0


def test_the_stream_of_an_ended_study_replays_its_log_and_ends(api, dataset):
    created = api.post("/v1/studies", json=study(dataset["id"], parallel=1)).json()
    api.post(f"/v1/studies/{created['id']}/cancel")
    r = api.get(f"/v1/studies/{created['id']}/events")
    assert r.status_code == 200
    events = list(parse_sse(iter(r.text.splitlines())))
    assert events[0].event == "leaderboard" and events[0].id is None
    assert events[-1].event == "end" and events[-1].data["status"] == "cancelled"
    logged = [e for e in events if e.id is not None]
    assert [e.id for e in logged] == list(range(1, len(logged) + 1))
    members = [e.data for e in logged if e.event == "member"]
    # The first member's pack (sgd, both seeds) was released (queued), then all six were cancelled.
    assert [m["status"] for m in members] == ["queued"] * 2 + ["cancelled"] * 6
    assert {m["job_id"] for m in members} == {m["job_id"] for m in created["members"]}
    resumed = api.get(f"/v1/studies/{created['id']}/events", headers={"Last-Event-ID": str(logged[-2].id)})
    again = [e for e in parse_sse(iter(resumed.text.splitlines())) if e.id is not None]
    assert [e.id for e in again] == [logged[-1].id]


def test_curves_of_a_study_that_has_not_trained_are_empty_per_variant(api, dataset):
    created = api.post("/v1/studies", json=study(dataset["id"])).json()
    r = api.get(f"/v1/studies/{created['id']}/curves", params={"metric": "train_loss", "x": "seconds"})
    assert r.status_code == 200, r.text
    assert r.json()["metric"] == "train_loss" and r.json()["x"] == "seconds"
    assert [v["variant"] for v in r.json()["variants"]] == ["sgd", "nesterov", "adam"]
    assert all(v["mean"] == [] for v in r.json()["variants"])
    assert api.get(f"/v1/studies/{created['id']}/curves", params={"x": "hours"}).status_code == 422


def test_a_search_makes_its_first_trials_from_the_space(api, dataset):
    search = {"space": {"optimizer.lr": {"log_uniform": [1e-3, 1e-1]}, "optimizer.type": {"choice": ["sgd", "adam"]}},
              "trials": 5, "parallel": 2, "sampler": "random", "pruner": "median"}
    r = api.post("/v1/studies", json=study(dataset["id"], variants=[], seeds=[], search=search))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["kind"] == "search" and body["planned"] == 5
    assert [m["status"] for m in body["members"]] == ["queued", "queued"]
    for m in body["members"]:
        assert 1e-3 <= m["params"]["optimizer.lr"] <= 1e-1 and m["params"]["optimizer.type"] in ("sgd", "adam")
        spec = api.get(f"/v1/jobs/{m['job_id']}/spec").json()["spec"]
        assert spec["optimizer"]["type"] == m["params"]["optimizer.type"]
        assert spec["optimizer"]["lr"] == m["params"]["optimizer.lr"]
    assert body["members"][0]["params"] != body["members"][1]["params"]


def test_a_search_space_that_makes_a_bad_spec_is_refused_before_anything_is_stored(api, dataset):
    before = stored(api)
    search = {"space": {"training.batch_size": {"choice": [16, 0]}}, "trials": 4}
    r = api.post("/v1/studies", json=study(dataset["id"], variants=[], seeds=[], search=search))
    assert r.status_code == 422, r.text
    assert "search.space.training.batch_size" in errors_for(r)
    r = api.post("/v1/studies", json=study(dataset["id"], search={"space": {"optimizer.lr": {"uniform": [0.1, 0.01]}},
                                                                  "trials": 2}))
    assert r.status_code == 422
    assert stored(api) == before


@pytest.mark.services
def test_an_idempotency_key_returns_the_same_study_and_a_different_body_is_a_409(api, dataset):
    headers = {"Idempotency-Key": f"study-{dataset['id']}"}
    first = api.post("/v1/studies", json=study(dataset["id"]), headers=headers)
    again = api.post("/v1/studies", json=study(dataset["id"]), headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"] and stored(api) == (1, 6)
    conflict = api.post("/v1/studies", json=study(dataset["id"], seeds=[1]), headers=headers)
    assert conflict.status_code == 409 and "different study" in errors_for(conflict)["Idempotency-Key"]
    assert stored(api) == (1, 6)


def test_a_typo_in_a_member_gets_the_closest_allowed_name_where_the_request_set_it(api, dataset):
    variants = [{"label": "keras", "set": {"optimizer": {"type": "sgd", "learning_rate": 0.1}}}]
    r = api.post("/v1/studies", json=study(dataset["id"], variants=variants, seeds=[]))
    assert r.status_code == 422, r.text
    assert errors_for(r)["variants[0].set.optimizer.learning_rate"].endswith("did you mean 'lr'?")
    # the study's own fields, checked by the route's model
    r = api.post("/v1/studies", json={**study(dataset["id"]), "seed": [1]})
    assert r.status_code == 422 and errors_for(r)["seed"].endswith("did you mean 'seeds'?")
