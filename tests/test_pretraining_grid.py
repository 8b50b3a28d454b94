"""The grid's pretrainings (issue 32): recorded like runs under
results/pretraining/, never with their weights, and the fine-tuning groups that
start from them only from the recorded weights."""
import json
import shutil
from pathlib import Path

import pytest

from ssfer.book import pretraining_grid
from ssfer.book.recording import load_grid, load_results, pending, read_grid, record_grid
from ssfer.cli import main
from ssfer.config import ConfigError
from ssfer.record import RunRecord

REPO = Path(__file__).resolve().parents[1]
# a few seconds on one core (tests/test_pretrain.py's TINY, two epochs)
TINY = {"data.n_train": 300, "data.n_test": 40, "data.size": 16, "split.n_per_class": 1, "split.val_per_class": 3,
        "byol.projector_hidden": 32, "byol.projector_dim": 16, "byol.predictor_hidden": 32,
        "views.blur_sigma": [0.1, 0.5], "probe.k": 5, "probe.every": 1, "train.epochs": 2, "train.batch_size": 32,
        "train.log_every": 3}


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SSFER_CACHE", str(tmp_path / "cache"))


def _grid(tmp_path, two_step_overrides, **group) -> Path:
    shutil.copy(REPO / "configs" / "synthfer_dta_snl.yaml", tmp_path / "c.yaml")
    shutil.copy(REPO / "configs" / "synthfer_pretrain.yaml", tmp_path / "p.yaml")
    fine = {k: v for k, v in two_step_overrides.items() if k != "train.progress"}
    g = {"pretrainings": [{"name": "synth_byol", "config": "p.yaml", "set": TINY}],
         "groups": [{"name": "synth_{algorithm}_s{seed}", "config": "c.yaml", "algorithms": ["supervised"],
                     "seeds": [0, 1], "set": fine},
                    {"name": "synth_byol_{algorithm}_s{seed}", "config": "c.yaml", "algorithms": ["supervised"],
                     "seeds": [0, 1], "set": fine, "variant": "BYOL-pretrained", "pretraining": "synth_byol", **group}]}
    (tmp_path / "grid.yaml").write_text(json.dumps(g))
    return tmp_path / "grid.yaml"


@pytest.mark.slow  # pretrains two epochs and fine-tunes
def test_a_pretraining_is_recorded_without_weights_and_its_group_starts_from_them(tmp_path, monkeypatch,
                                                                                  two_step_overrides):
    monkeypatch.chdir(tmp_path)
    grid, pretrainings = read_grid(_grid(tmp_path, two_step_overrides))
    results = tmp_path / "results"
    out = record_grid(grid, tmp_path, results, {}, only=["synth_byol_*_s0"], pretrainings=pretrainings)
    # the pretraining the run starts from is recorded first, then the run
    assert out == {"synth_byol": "", "synth_byol_supervised_s0": ""}
    folder = results / "pretraining" / "synth_byol"
    assert sorted(p.name for p in folder.iterdir()) == sorted(pretraining_grid.ARTIFACTS)  # no weights
    made = pretraining_grid.load_recorded(results, "synth_byol")
    assert made.probe_curve() and made.config.train.epochs == 2
    run = RunRecord.load(results / "synth_byol_supervised_s0")
    assert run.summary["pretrained"]["sha256"] == made.summary["weights_sha256"]
    cmd = (results / "synth_byol_supervised_s0" / "command.txt").read_text()
    assert "# starts from the weights of pretraining/synth_byol, made by:" in cmd
    assert "ssfer pretrain --config p.yaml" in cmd and "--set model.pretrained_path=" in cmd
    # both say what making the weights again costs, from the pretraining's record
    took = pretraining_grid.cost(made.summary, made.environment)
    assert f"#   which took {took}\n" in cmd and "CPU hours" in took and made.environment["cpu_model"] in took
    assert f"# took {took}\n" in (folder / "command.txt").read_text()
    # the pretraining's folder is not a run
    assert list(load_results(results)) == ["synth_byol_supervised_s0"]

    # a machine whose weights differ from the recorded ones starts no fine-tuning from them
    summary = json.loads((folder / "summary.json").read_text())
    (folder / "summary.json").write_text(json.dumps(summary | {"weights_sha256": "0" * 64}))
    out = record_grid(grid, tmp_path, results, {}, only=["synth_byol_*_s1"], pretrainings=pretrainings)
    assert "the weights here have sha256" in out["synth_byol"] and "the recorded ones 000000000000" in out["synth_byol"]
    assert out["synth_byol_supervised_s1"].startswith("its pretraining synth_byol has no weights here")
    assert not (results / "synth_byol_supervised_s1").exists()


def test_only_may_choose_a_pretraining_alone_and_status_names_it(tmp_path, monkeypatch, capsys, two_step_overrides):
    monkeypatch.chdir(tmp_path)
    grid, pretrainings = read_grid(_grid(tmp_path, two_step_overrides))
    assert pending(grid, tmp_path / "results", only=["synth_byol"], also=list(pretrainings)) == []
    with pytest.raises(ConfigError, match="--only nothing: no run of the grid matches"):
        pending(grid, tmp_path / "results", only=["nothing"], also=list(pretrainings))
    assert main(["results", "status", "--grid", "grid.yaml", "--results-dir", "results"]) == 0
    said = capsys.readouterr().out
    assert "0 of 1 pretrainings of grid.yaml recorded" in said and "to record: synth_byol" in said
    assert "to record: synth_byol_supervised_s0 (starts from synth_byol)" in said
    # the command names where the weights come from, not a path that is not there yet
    p = next(p for p in grid if p.pretraining)
    assert "'model.pretrained_path=<the weights of pretraining/synth_byol>'" in p.command(tmp_path, {})
    with pytest.raises(ConfigError, match="starts from the pretraining 'synth_byol': it needs its weights"):
        p.resolve(tmp_path, {})


def test_status_reads_the_pilots_rule_once_every_pilot_is_recorded(tmp_path, monkeypatch, capsys):
    from ssfer.pretrain.config import PretrainConfig
    from ssfer.pretrain.record import PretrainRecord

    monkeypatch.chdir(tmp_path)
    shutil.copy(REPO / "configs" / "synthfer_dta_snl.yaml", tmp_path / "c.yaml")
    shutil.copy(REPO / "configs" / "synthfer_pretrain.yaml", tmp_path / "p.yaml")
    pilots = {"synth_pilot_a": (0.4, [0.30, 0.36, 0.38, 0.40]), "synth_pilot_b": (0.2, [0.31, 0.35, 0.37, 0.39])}
    g = {"pretrainings": [{"name": n, "config": "p.yaml", "set": {"train.epochs": 20, "views.crop_scale": [c, 1.0]}}
                          for n, (c, _) in pilots.items()]
         + [{"name": "synth_final", "config": "p.yaml", "set": {"train.epochs": 190}}],
         "groups": [{"name": "synth_{algorithm}_s{seed}", "config": "c.yaml", "algorithms": ["supervised"],
                     "seeds": [0]}]}
    (tmp_path / "grid.yaml").write_text(json.dumps(g))

    def status() -> str:
        assert main(["results", "status", "--grid", "grid.yaml", "--results-dir", "results"]) == 0
        return capsys.readouterr().out

    assert "the pilot's rule: the rule is read once every pilot is recorded (0 of 2 so far)." in status()
    for name, (crop, accuracies) in pilots.items():
        cfg = PretrainConfig.from_yaml(tmp_path / "p.yaml").with_overrides(
            {"train.epochs": 20, "views.crop_scale": [crop, 1.0], "probe.every": 5})
        history = [{"epoch": 5 * (i + 1), "step": 10 * (i + 1), "probe_accuracy": a, "seconds": 750.0 * (i + 1),
                    "cpu_seconds": 750.0 * (i + 1)} for i, a in enumerate(accuracies)]
        folder = pretraining_grid.folder(tmp_path / "results", name)
        PretrainRecord(cfg, history, {"probe_accuracy": accuracies[-1], "cpu_seconds": 3000.0}).save(folder)
        (folder / "command.txt").write_text("ssfer pretrain --config p.yaml\n")
    said = status()
    # 8 CPU hours at 150 s an epoch: 192 epochs, 190 in whole probe intervals
    assert ("the pilot's rule: by the rule, the final pretraining takes crop floor 0.4 from synth_pilot_a, whose "
            "pilot ended at 40.0 % validation kNN accuracy (synth_pilot_b: 39.0 %)") in said
    assert "The grid names synth_final: crop floor 0.4, 190 epochs, as the rule gives." in said
    # the final one still to record, priced at the pilots' 150 CPU seconds an epoch
    assert "about 7.9 CPU hours of pretraining left (synth_final: 190 of 190 epochs at 150 CPU seconds" in said
    # before the grid names a fine-tuning of the pretrained start, nothing waits on it
    assert "fine-tuning choice" not in said and "the gate:" not in said
    g["groups"].append({"name": "synth_tune_{algorithm}_s{seed}", "variant": "BYOL fine-tuning: lr 0.001",
                        "pretraining": "synth_final", "config": "c.yaml", "algorithms": ["supervised"],
                        "seeds": [0, 1], "set": {"train.lr": 0.001}})
    (tmp_path / "grid.yaml").write_text(json.dumps(g))
    said = status()
    # the next steps of the order: the setting chosen on validation, then the gate
    assert "the fine-tuning choice: none yet (0 of 1 settings have their runs at seeds 0 and 1)" in said
    assert "the gate: not measured yet (0 of 3 paired seeds recorded)" in said
    assert "the gate's group" not in said     # offered only once the setting is chosen


@pytest.mark.parametrize("group, message", [
    ({"pretraining": "other"}, "pretraining 'other' is not among the grid's pretrainings \\(synth_byol\\)"),
    ({"variant": ""}, "a group that starts from a pretraining needs a variant"),
])
def test_a_group_naming_an_unknown_pretraining_or_without_a_variant_is_refused(tmp_path, two_step_overrides,
                                                                               group, message):
    with pytest.raises(ConfigError, match=f"groups\\[1\\]: {message}"):
        load_grid(_grid(tmp_path, two_step_overrides, **group))


def test_a_pretraining_entry_is_checked(tmp_path):
    g = tmp_path / "g.yaml"
    g.write_text("pretrainings:\n  - {name: a, config: p.yaml, epochs: 3}\ngroups: []\n")
    with pytest.raises(ConfigError, match="pretrainings\\[0\\]: expected \\{name, config, set\\}"):
        load_grid(g)
    g.write_text("pretrainings:\n  - {name: a, config: p.yaml}\n  - {name: a, config: q.yaml}\ngroups: []\n")
    with pytest.raises(ConfigError, match="pretrainings\\[1\\]: the name 'a' repeats"):
        load_grid(g)


def test_a_pretraining_another_command_is_recording_is_left_to_it_with_its_runs(tmp_path, monkeypatch,
                                                                                two_step_overrides):
    from filelock import FileLock

    monkeypatch.chdir(tmp_path)
    grid, pretrainings = read_grid(_grid(tmp_path, two_step_overrides))
    results = tmp_path / "results"
    (results / ".recording").mkdir(parents=True)
    with FileLock(results / ".recording" / "pretraining.synth_byol.lock", timeout=0):
        out = record_grid(grid, tmp_path, results, {}, only=["synth_byol_*_s0"], pretrainings=pretrainings)
    assert out == {"synth_byol_supervised_s0": "its pretraining synth_byol has no weights here: it is being "
                                               "recorded by another command"}
    assert not (results / "pretraining").exists() and not (tmp_path / "cache" / "pretrain").exists()


def test_status_says_which_epoch_an_unfinished_pretraining_reached(tmp_path, monkeypatch, capsys, two_step_overrides):
    from ssfer.book.progress import partial
    from ssfer.pretrain.loop import Pretrainer
    from ssfer.pretrain.run import run_dir_for

    monkeypatch.chdir(tmp_path)
    _, pretrainings = read_grid(_grid(tmp_path, two_step_overrides))
    cfg = pretrainings["synth_byol"].resolve(tmp_path, {})
    first = Pretrainer(cfg, run_dir_for(cfg))
    assert first.fit(stop_after=first.steps_per_epoch + 3) is None   # mid-way through the second epoch
    found = partial(list(pretrainings.values()), tmp_path, kind="pretraining")["synth_byol"]
    assert (found.done, found.planned, found.unit, found.resumes) == (1, 2, "epoch", True)
    assert main(["results", "status", "--grid", "grid.yaml", "--results-dir", "results"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("  to record: synth_byol "))
    assert line.startswith("  to record: synth_byol (checkpoint at epoch 1 of 2, written ")
    assert line.endswith("; recording resumes from it)")


def test_the_cpu_hours_left_to_pretrain_are_priced_at_the_recorded_pace_on_as_many_threads(tmp_path):
    from ssfer.pretrain.config import PretrainConfig
    from ssfer.pretrain.record import PretrainRecord

    shutil.copy(REPO / "configs" / "synthfer_pretrain.yaml", tmp_path / "p.yaml")
    base = PretrainConfig.from_yaml(tmp_path / "p.yaml")
    # 150 and 250 CPU seconds an epoch on one thread, 300 on two
    recorded = {f"r{i}": PretrainRecord(base.with_overrides({"train.epochs": 10, "train.threads": t}), [],
                                        {"cpu_seconds": 10 * pace, "threads": t})
                for i, (pace, t) in enumerate([(150, 1), (250, 1), (300, 2)])}
    one = pretraining_grid.PlannedPretraining("one", "p.yaml", {"train.epochs": 100, "train.threads": 1})
    four = pretraining_grid.PlannedPretraining("four", "p.yaml", {"train.epochs": 30, "train.threads": 4})
    said = pretraining_grid.cost_left([one], recorded, tmp_path, {"one": 40})
    # 60 epochs left at the one-thread mean of 200 s: 12,000 s
    assert said == ("about 3.3 CPU hours of pretraining left (one: 60 of 100 epochs at 200 CPU seconds an epoch, "
                    "the pace recorded on 1 thread(s))")
    said = pretraining_grid.cost_left([four], recorded, tmp_path)
    # no record on four threads: the mean of all three, 233 s, and said so
    assert said.startswith("about 1.9 CPU hours of pretraining left (four: 30 of 30 epochs at 233 CPU seconds an "
                           "epoch, the pace recorded on 1 thread(s) and 2 thread(s); it runs on 4")
    assert pretraining_grid.cost_left([], recorded, tmp_path) == ""
    # never at another data set's pace
    other = pretraining_grid.PlannedPretraining("other", "p.yaml", {"data.dataset": "ferplus", "data.root": "x"})
    assert pretraining_grid.cost_left([other], recorded, tmp_path) == (
        "no estimate of the CPU hours left to pretrain; not priced, with no recorded pretraining of their data set: "
        "other")
    assert pretraining_grid.cost_left([one, other], recorded, tmp_path).endswith(
        "the pace recorded on 1 thread(s)); not priced, with no recorded pretraining of their data set: other")
