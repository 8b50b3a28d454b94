import pytest

from ssfer.algo.compose import recipe_for
from ssfer.config import Config, ConfigError, parse_assignments


def test_defaults_validate_and_hash_is_stable():
    a, b = Config.default(), Config.from_dict({})
    assert a == b and a.hash() == b.hash()
    assert a.with_overrides({"train.steps": 7}).hash() != a.hash()
    # showing a progress bar changes nothing a run computes: same cache entry
    assert a.with_overrides({"train.progress": False}).hash() == a.hash()


@pytest.mark.parametrize("overrides, key", [
    ({"train.stepz": 3}, "train.stepz"),
    ({"nope.x": 1}, "nope.x"),
    ({"train.lr": -0.1}, "train.lr"),
    ({"train.lr": "fast"}, "train.lr"),
    ({"algo.name": "mixmatch"}, "algo.name"),
    ({"algo.threshold_args": {"tau": 1.5}}, "algo.threshold_args.tau"),
    ({"algo.threshold": "magic"}, "algo.threshold"),
    ({"data.channels": 2}, "data.channels"),
    ({"train.steps": True}, "train.steps"),
    ({"model.attention": "global"}, "model.attention"),
    ({"algo.name": "dta", "algo.threshold_args": {"sauce": "labeled"}}, "algo.threshold_args"),
    ({"algo.name": "dta", "algo.threshold_args": {"source": "vibes"}}, "algo.threshold_args"),
    ({"algo.name": "supervised", "algo.threshold_args": {"tau": 0.5}}, "algo.threshold_args"),
    ({"algo.name": "dta_snl", "algo.negatives_args": {"T": -1.0}}, "algo.negatives_args"),
    ({"data.dataset": "rafdb"}, "data.root"),
    ({"model.stem": "tiny"}, "model.stem"),
    ({"data.val_split": "val", "split.val_per_class": 5}, "data.val_split"),
    ({"data.val_split": "test"}, "data.val_split"),
    ({"train.labeled_sampling": "weighted"}, "train.labeled_sampling"),
    ({"train.label_smoothing": 1.0}, "train.label_smoothing"),
])
def test_bad_values_are_rejected_naming_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        Config.default().with_overrides(overrides)


def test_unknown_section_key_from_dict():
    with pytest.raises(ConfigError, match="train.epochs"):
        Config.from_dict({"train": {"epochs": 3}})


def test_yaml_round_trip(tmp_path):
    cfg = Config.default().with_overrides(["algo.name=dta_snl", "train.steps=12", "split.fraction=0.25"])
    p = tmp_path / "c.yaml"
    p.write_text(cfg.to_yaml())
    assert Config.from_yaml(p) == cfg


def test_yaml_error_names_the_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("train:\n  steps: -3\n")
    with pytest.raises(ConfigError, match="bad.yaml.*train.steps"):
        Config.from_yaml(p)


def test_parse_assignments_types():
    assert parse_assignments(["a=1", "b=0.5", "c=true", "d=x", "e=[1, 2]"]) == \
        {"a": 1, "b": 0.5, "c": True, "d": "x", "e": [1, 2]}
    with pytest.raises(ConfigError, match="key=value"):
        parse_assignments(["oops"])


def test_recipes_compose_parts():
    c = Config.default()
    assert recipe_for(c.with_overrides({"algo.name": "dta_snl"}).algo).negatives == "snl"
    r = recipe_for(c.with_overrides({"algo.name": "fixmatch", "algo.negatives": "nlnl"}).algo)
    assert (r.threshold, r.negatives) == ("fixed", "nlnl")
    assert not recipe_for(c.with_overrides({"algo.name": "supervised"}).algo).uses_unlabeled
    assert recipe_for(c.with_overrides({"algo.name": "pseudo_label"}).algo).student_view == "weak"
    with pytest.raises(ConfigError, match="algo.threshold"):
        recipe_for(c.with_overrides({"algo.name": "custom"}).algo)
