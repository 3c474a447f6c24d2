"""Names and labels of jobs and studies: stored and shown, kept out of the spec, filtered on
(?label= AND-ed, ?name= exact, ?name_prefix=), bounded (a 422 naming the label), inherited by a
study's members, and part of what an Idempotency-Key's replay is compared on."""
import pytest

from tests.e2e.helpers import blobs, errors_for, mlp_spec, upload_npz


@pytest.fixture
def dataset(api) -> dict:
    return upload_npz(api, *blobs(100))


def submit(api, dataset_id: str, **meta) -> dict:
    r = api.post("/v1/jobs", json={**mlp_spec(dataset_id), **meta})
    assert r.status_code == 202, r.text
    return r.json()


def ids(api, path="/v1/jobs", **params) -> list[str]:
    r = api.get(path, params=params)
    assert r.status_code == 200, r.text
    return [item["id"] for item in r.json()["items"]]


@pytest.mark.services
def test_a_jobs_name_and_labels_are_shown_everywhere_but_in_its_spec(api, dataset):
    labels = {"team": "vision", "app.kubernetes.io/part-of": "sweep-7", "empty": ""}
    created = submit(api, dataset["id"], name="mlp baseline", labels=labels)
    assert created["name"] == "mlp baseline" and created["labels"] == labels
    read = api.get(f"/v1/jobs/{created['id']}").json()
    assert read["name"] == "mlp baseline" and read["labels"] == labels
    assert api.get("/v1/jobs").json()["items"][0]["labels"] == labels
    # The spec is the training's alone: it rebuilds the model, and a study's base takes it as is.
    spec = api.get(f"/v1/jobs/{created['id']}/spec").json()["spec"]
    assert "name" not in spec and "labels" not in spec
    plain = submit(api, dataset["id"])
    assert plain["name"] is None and plain["labels"] == {}


@pytest.mark.services
def test_the_list_filters_by_labels_all_of_them_and_by_name(api, other_api, dataset):
    a = submit(api, dataset["id"], name="sweep-1", labels={"team": "vision", "stage": "dev"})
    b = submit(api, dataset["id"], name="sweep-2", labels={"team": "vision", "stage": "prod"})
    c = submit(api, dataset["id"], name="other", labels={"team": "nlp", "note": "a:b c"})
    submit(other_api, upload_npz(other_api, *blobs(100))["id"], name="sweep-1", labels={"team": "vision"})
    assert ids(api, label="team:vision") == [b["id"], a["id"]]
    assert ids(api, label=["team:vision", "stage:prod"]) == [b["id"]]
    assert ids(api, label=["team:vision", "stage:nope"]) == []
    assert ids(api, label=["team:vision", "team:nlp"]) == []  # one key, two values: nothing has both
    assert ids(api, label="note:a:b c") == [c["id"]]  # the value is everything after the first colon
    assert ids(api, label="team:") == []
    assert ids(api, name="sweep-1") == [a["id"]]
    assert ids(api, name="sweep") == []  # name is exact
    assert ids(api, name_prefix="sweep-") == [b["id"], a["id"]]
    assert ids(api, name_prefix="sweep_") == []  # LIKE's wildcards are escaped
    assert ids(api, name_prefix="sweep-", label="stage:dev") == [a["id"]]
    page = api.get("/v1/jobs", params={"label": "team:vision", "limit": 1}).json()
    assert page["total"] == 2 and len(page["items"]) == 1


@pytest.mark.parametrize("label", ["team", ":vision", "bad key:x", "k" * 64 + ":v", "team:" + "v" * 201])
def test_a_label_filter_that_is_not_key_value_is_422_naming_label(api, label):
    r = api.get("/v1/jobs", params={"label": label})
    assert r.status_code == 422 and "key:value" in errors_for(r)["label"], r.text
    r = api.get("/v1/studies", params={"label": label})
    assert r.status_code == 422 and "label" in errors_for(r), r.text


@pytest.mark.parametrize("meta, field", [
    ({"labels": {"bad key": "x"}}, "labels.bad key"),
    ({"labels": {"k" * 64: "x"}}, "labels." + "k" * 64),
    ({"labels": {"team": "v" * 201}}, "labels.team"),
    ({"labels": {"team": "two\nlines"}}, "labels.team"),
    ({"labels": {"team": 3}}, "labels.team"),
    ({"labels": {f"k{i}": "v" for i in range(33)}}, "labels"),
    ({"labels": ["team"]}, "labels"),
    ({"name": ""}, "name"),
    ({"name": "n" * 201}, "name"),
])
def test_bad_names_and_labels_are_422_naming_them_and_store_nothing(api, dataset, meta, field):
    r = api.post("/v1/jobs", json={**mlp_spec(dataset["id"]), **meta})
    assert r.status_code == 422, r.text
    assert field in errors_for(r), r.text
    assert api.get("/v1/jobs").json()["total"] == 0


def test_thirty_two_labels_of_the_longest_keys_and_values_are_accepted(api, dataset):
    labels = {f"{i:02d}" + "k" * 61: "v" * 200 for i in range(32)}
    assert submit(api, dataset["id"], name="n" * 200, labels=labels)["labels"] == labels


def test_a_dry_run_takes_name_and_labels_and_queues_nothing(api, dataset):
    r = api.post("/v1/jobs", params={"dry_run": "true"},
                 json={**mlp_spec(dataset["id"]), "name": "try", "labels": {"team": "vision"}})
    assert r.status_code == 200 and r.json()["valid"], r.text
    assert api.get("/v1/jobs").json()["total"] == 0


@pytest.mark.services
def test_an_idempotent_replay_compares_name_and_labels_too(api, dataset):
    headers = {"Idempotency-Key": f"labels-{dataset['id']}"}
    body = {**mlp_spec(dataset["id"]), "name": "first", "labels": {"team": "vision"}}
    first = api.post("/v1/jobs", json=body, headers=headers)
    assert api.post("/v1/jobs", json=body, headers=headers).json()["id"] == first.json()["id"]
    for changed in ({**body, "name": "second"}, {**body, "labels": {"team": "nlp"}}):
        r = api.post("/v1/jobs", json=changed, headers=headers)
        assert r.status_code == 409 and "Idempotency-Key" in errors_for(r), r.text
    assert api.get("/v1/jobs").json()["total"] == 1


def test_a_job_without_name_and_labels_hashes_as_before_they_existed():
    """A key used before migration 0008 still replays: its stored digest is of the spec alone."""
    import hashlib
    import json

    from app.jobs.service import request_hash
    from app.ml.spec import JobSpec

    spec = JobSpec.model_validate(mlp_spec("ds_x"))
    assert request_hash(spec) == hashlib.sha256(
        json.dumps(spec.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()
    assert request_hash(spec, name="n") != request_hash(spec) != request_hash(spec, labels={"a": "b"})


@pytest.mark.services
def test_a_studys_labels_are_shown_filtered_on_and_carried_by_its_members(api, dataset):
    labels = {"team": "vision", "sweep": "lr"}
    body = {"name": "lr sweep", "labels": labels, "base": mlp_spec(dataset["id"], epochs=2), "seeds": [1, 2]}
    r = api.post("/v1/studies", json=body)
    assert r.status_code == 201, r.text
    study = r.json()
    assert study["labels"] == labels
    other = api.post("/v1/studies", json={"name": "plain", "base": mlp_spec(dataset["id"]), "seeds": [1]}).json()
    assert other["labels"] == {}
    assert ids(api, "/v1/studies", label="sweep:lr") == [study["id"]]
    assert ids(api, "/v1/studies", label=["sweep:lr", "team:nlp"]) == []
    assert ids(api, "/v1/studies", name="plain") == [other["id"]]
    assert ids(api, "/v1/studies", name_prefix="lr ") == [study["id"]]
    assert api.get("/v1/studies").json()["items"][1]["labels"] == labels
    members = [m["job_id"] for m in study["members"]]
    assert sorted(ids(api, label="sweep:lr")) == sorted(members)
    assert api.get(f"/v1/jobs/{members[0]}").json()["labels"] == labels
    r = api.post("/v1/studies", json={**body, "labels": {"team": "x" * 201}})
    assert r.status_code == 422 and "labels.team" in errors_for(r), r.text
