"""The command line: one module per command, ``ssfer results`` verbs as real
subcommands, and one KEY=VALUE reader whose values arrive typed."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
import fixtures_data as fx  # noqa: E402

from ssfer.cli import build_parser, main  # noqa: E402
from ssfer.config import Config  # noqa: E402
from ssfer.train import run  # noqa: E402


def _help(capsys, argv) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv + ["--help"])
    assert e.value.code == 0
    return capsys.readouterr().out


def test_each_results_verb_lists_only_its_own_flags(capsys):
    family = _help(capsys, ["results", "family"])
    assert "--metric" in family and "--grid" in family
    for other in ("--jobs", "--steps", "--root", "--halfwidth", "--log", "--only"):
        assert other not in family
    replay = _help(capsys, ["results", "replay"])
    assert "--steps" in replay and "--log" in replay and "--grid" not in replay and "--jobs" not in replay
    record = _help(capsys, ["results", "record"])
    assert "--jobs" in record and "--metric" not in record and "--steps" not in record
    assert "--halfwidth" in _help(capsys, ["results", "plan"])


def test_replay_needs_no_grid_file(tmp_path, monkeypatch, two_step_overrides, capsys):
    rec = run(Config.default().with_overrides({**two_step_overrides, "algo.name": "supervised", "train.steps": 2}),
              cache_dir=tmp_path / "cache")
    monkeypatch.chdir(tmp_path)     # no results/grid.yaml here
    assert not (tmp_path / "results" / "grid.yaml").exists()
    assert main(["results", "replay", str(rec.run_dir), "--steps", "2"]) == 0
    assert "identical" in capsys.readouterr().out


def test_the_old_spelling_with_flags_before_the_verb_still_works(tmp_path, monkeypatch, capsys):
    (tmp_path / "g.yaml").write_text("groups: []\n")
    monkeypatch.chdir(tmp_path)
    assert main(["results", "--grid", "g.yaml", "--results-dir", "r", "status"]) == 0
    assert "0 of 0 runs of g.yaml recorded" in capsys.readouterr().out


def test_a_results_verb_given_as_an_unknown_choice_is_refused_by_argparse(capsys):
    with pytest.raises(SystemExit) as e:
        main(["results", "nope"])
    assert e.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err


def test_loader_options_reach_the_affectnet_loader_typed(tmp_path, capsys):
    """``-o num_classes=8 -o crop=false`` arrive as 8 and False: as strings, the
    loader refused '8' and read "false" as true."""
    fx.build_affectnet_csv(tmp_path)
    argv = ["data", "check", "affectnet", str(tmp_path), "--no-images", "--json"]
    assert main(argv + ["-o", "num_classes=8", "-o", "crop=false"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["options"] == {"num_classes": 8, "crop": False}
    assert report["splits"]["test"]["per_class"]["contempt"] == 1     # code 7 kept: 8 classes
    assert main(argv + ["-o", "num_classes=eight"]) == 2
    assert "--option num_classes='eight': affectnet expects int" in capsys.readouterr().err
    assert main(argv + ["-o", "crops=false"]) == 2
    assert "--option crops: affectnet has no such option; known: num_classes, crop" in capsys.readouterr().err


def test_eval_hands_the_loader_typed_options(tmp_path, monkeypatch):
    seen = {}

    def fake(run_dir, dataset, root, split="test", options=None, device="auto"):
        seen.update(options)
        return {}

    monkeypatch.setattr("ssfer.evaluate.evaluate_run", fake)
    assert main(["eval", str(tmp_path), "--dataset", "affectnet", "--root", str(tmp_path),
                 "--option", "crop=false", "--option", "num_classes=8"]) == 0
    assert seen == {"crop": False, "num_classes": 8}


def test_one_reader_serves_set_option_and_the_notebook_overrides():
    from ssfer.book.reproduce import parse_overrides
    from ssfer.cli.options import key_value
    from ssfer.config import parse_assignments

    items = ["a=8", "b=false", "c=[1, 2]", 'd={"x": "y"}', "e=3e-3", "f=label.csv"]
    expected = {"a": 8, "b": False, "c": [1, 2], "d": {"x": "y"}, "e": 0.003, "f": "label.csv"}
    assert parse_assignments(items) == expected == parse_overrides(items) == dict(map(key_value, items))


def test_every_command_is_registered_once_with_its_module():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert list(sub.choices) == ["train", "pretrain", "eval", "bench", "results", "labs", "data", "reproduce"]
