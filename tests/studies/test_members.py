"""How a member's overrides apply to the base spec, and where an error in the merged spec is said to come from."""
import pytest

from app.studies.members import MemberError, Override, apply, attribute, expand, normalize

BASE = {"optimizer": {"type": "adam", "lr": 0.01, "betas": [0.9, 0.99]},
        "model": {"layers": [{"type": "linear", "out_features": 8}, {"type": "relu"}]},
        "training": {"epochs": 3, "seed": 5}}


def over(path: str, value, source: str = "here") -> Override:
    return Override(normalize(path), value, source)


def test_a_value_replaces_and_an_object_of_the_same_type_merges():
    spec = apply(BASE, (over("optimizer", {"lr": 0.1}), over("model.layers.0.out_features", 32)))
    assert spec["optimizer"] == {"type": "adam", "lr": 0.1, "betas": [0.9, 0.99]}
    assert spec["model"]["layers"][0] == {"type": "linear", "out_features": 32}
    assert BASE["optimizer"]["lr"] == 0.01  # the base is not changed


def test_a_new_type_starts_the_object_afresh_keeping_the_members_own_overrides():
    whole = apply(BASE, (over("optimizer", {"type": "sgd", "lr": 0.1}),))
    assert whole["optimizer"] == {"type": "sgd", "lr": 0.1}
    # A type path sorts first, whatever the order the overrides came in.
    dotted = apply(BASE, (over("optimizer.momentum", 0.9), over("optimizer.type", "sgd")))
    assert dotted["optimizer"] == {"type": "sgd", "momentum": 0.9}
    same = apply(BASE, (over("optimizer.type", "adam"),))
    assert same["optimizer"]["betas"] == [0.9, 0.99]


def test_a_path_that_leads_nowhere_names_its_source():
    with pytest.raises(MemberError) as exc:
        apply(BASE, (over("model.layers.5.out_features", 4, "variants[2].set.model.layers.5.out_features"),))
    assert exc.value.errors == [{"field": "variants[2].set.model.layers.5.out_features",
                                 "message": "there is no item 5 at model.layers[5].out_features"}]
    with pytest.raises(MemberError, match="does not lead into an object"):
        apply(BASE, (over("training.epochs.x", 1),))


def test_an_error_is_attributed_to_the_longest_override_that_covers_it():
    overrides = (over("optimizer", {"type": "sgd"}, "variants[1].set.optimizer"),
                 over("optimizer.lr", -1, "grid.optimizer.lr[2]"), over("training.seed", 4, "seeds[0]"))
    assert attribute("optimizer.lr", overrides) == "grid.optimizer.lr[2]"
    assert attribute("optimizer.momentum", overrides) == "variants[1].set.optimizer.momentum"
    assert attribute("optimizer", overrides) == "variants[1].set.optimizer"
    assert attribute("optimizer", overrides[1:]) == "grid.optimizer.lr[2]"  # the nearest under it
    assert attribute("model.layers[0].out_features", overrides) == "base.model.layers[0].out_features"
    assert attribute("training.seed", overrides) == "seeds[0]"


def test_members_are_seed_major_and_a_study_without_seeds_keeps_the_bases():
    members = expand(variants=[("a", {}), ("b", {"optimizer.lr": 1})], grid={"training.epochs": [1, 2]},
                     seeds=[7, 8], base_seed=5)
    assert [(m.variant, m.seed) for m in members] == [
        ("a / training.epochs=1", 7), ("a / training.epochs=2", 7), ("b / training.epochs=1", 7),
        ("b / training.epochs=2", 7), ("a / training.epochs=1", 8), ("a / training.epochs=2", 8),
        ("b / training.epochs=1", 8), ("b / training.epochs=2", 8)]
    assert members[3].params == {"optimizer.lr": 1, "training.epochs": 2, "training.seed": 7}
    assert [o.source for o in members[3].overrides] == ["variants[1].set.optimizer.lr", "grid.training.epochs[1]",
                                                        "seeds[0]"]
    lone = expand(variants=[], grid={}, seeds=[], base_seed=5)
    assert [(m.variant, m.seed, m.overrides) for m in lone] == [("base", 5, ())]
