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


def test_every_python_number_literal_is_a_number_on_the_command_line():
    got = parse_assignments(["a=3e-3", "b=1E5", "c=.5", "d=-.5", "e=1_000.0", "f=5.", "g=1e30",
                             "h=0x10", "i=1_000", "j=0o17", "k=0b11", "l=010", "m=x1e3"])
    assert got == {"a": 0.003, "b": 1e5, "c": 0.5, "d": -0.5, "e": 1000.0, "f": 5.0, "g": 1e30,
                   "h": 16, "i": 1000, "j": 15, "k": 3, "l": "010", "m": "x1e3"}  # 010 is not YAML 1.1's octal 8
    cfg = Config.default().with_overrides(["train.lr=3e-3", "train.weight_decay=1E-4", "train.steps=1_000"])
    assert (cfg.train.lr, cfg.train.weight_decay, cfg.train.steps) == (0.003, 1e-4, 1000)


def test_scientific_notation_in_a_yaml_config(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  lr: 3e-3\n  weight_decay: 5E-4\n  steps: 2_000\nsplit:\n  fraction: .25\n")
    cfg = Config.from_yaml(p)
    assert (cfg.train.lr, cfg.train.weight_decay, cfg.train.steps, cfg.split.fraction) == (0.003, 5e-4, 2000, 0.25)


@pytest.mark.parametrize("key, value, expected", [
    ("train.lr", "3e-3", 0.003), ("train.lr", "1_000.5", 1000.5), ("train.lr", " .5", 0.5),
    ("train.steps", "1_000", 1000), ("train.steps", "0x10", 16),
])
def test_numeric_strings_are_read_as_python_reads_them(key, value, expected):
    # notebook parameters and dicts from elsewhere may hold numbers as text
    section, name = key.split(".")
    got = getattr(getattr(Config.from_dict({section: {name: value}}), section), name)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("key, value", [
    ("train.lr", "nan"), ("train.lr", "inf"), ("train.lr", float("inf")), ("data.difficulty", float("nan")),
    ("train.steps", "010"), ("train.steps", "1e3"), ("train.steps", 1000.0), ("train.lr", "3e-3x"),
])
def test_non_finite_and_malformed_numbers_are_refused(key, value):
    section, name = key.split(".")
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        Config.from_dict({section: {name: value}})


def test_a_missing_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: cannot read the config file"):
        Config.from_yaml(tmp_path / "nope.yaml")


def test_notebook_parameters_from_the_command_line_read_scientific_notation_too():
    from ssfer.book.reproduce import parse_overrides

    assert parse_overrides(["02_thresholds.lr=3e-3", "steps=1_000"]) == {"02_thresholds.lr": 0.003, "steps": 1000}


@pytest.mark.parametrize("key, a_known_one", [
    ("data.dataset", "synthfer"), ("data.tone", "equalize"), ("model.stem", "small_pool"),
    ("model.attention", "region"), ("model.feature_dropout", "channel"), ("algo.name", "dta_snl"),
    ("algo.threshold", "flexmatch"), ("algo.negatives", "snl"),
])
def test_a_field_naming_an_unknown_part_is_refused_listing_the_known_ones(key, a_known_one):
    with pytest.raises(ConfigError, match=rf"^{key}: unknown [a-z ]+ 'nope'; known: \[.*'{a_known_one}'"):
        Config.default().with_overrides({key: "nope"})


def test_a_threshold_rule_added_to_its_registry_is_a_config_value_the_trainer_uses(monkeypatch, tiny_overrides):
    """A new rule is its class and its registry entry (plus its test): nothing else names it."""
    from ssfer.algo.thresholds import THRESHOLDS, FixedThreshold
    from ssfer.train.loop import Trainer

    class HalfThreshold(FixedThreshold):
        def __init__(self, num_classes: int, tau: float = 0.5) -> None:
            super().__init__(num_classes, tau)

    half = {"algo.name": "custom", "algo.threshold": "half", "algo.negatives": "snl"}
    with pytest.raises(ConfigError, match=r"algo.threshold: unknown threshold rule 'half'"):
        Config.default().with_overrides(half)
    monkeypatch.setitem(THRESHOLDS, "half", HalfThreshold)
    with pytest.raises(ConfigError, match=r"algo.threshold_args: threshold 'half': unknown option\(s\) \['m'\]"):
        Config.default().with_overrides({**half, "algo.threshold_args": {"m": 1}})
    cfg = Config.default().with_overrides({**tiny_overrides, **half, "algo.threshold_args": {"tau": 0.25}})
    rec = Trainer(cfg).fit()
    assert rec.summary["threshold"] == "half"
    assert rec.history[-1]["thresholds"] == pytest.approx([0.25] * 7)
