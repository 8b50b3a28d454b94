"""Recording the real-data grid: planned runs, resumable recording, reading back."""
import json
import shutil
from pathlib import Path

import pytest

from ssfer.cli import main
from ssfer.config import ConfigError
from ssfer.results import ARTIFACTS, load_grid, load_results, pending, record_grid

REPO = Path(__file__).resolve().parents[1]
TINY = {"data.n_train": 300, "data.n_test": 40, "data.size": 16, "split.n_per_class": 2, "train.steps": 2,
        "train.batch_size": 4, "train.mu": 2, "train.eval_every": 0, "train.log_every": 1}


def _grid(tmp_path) -> Path:
    shutil.copy(REPO / "configs" / "synthfer_dta_snl.yaml", tmp_path / "c.yaml")
    g = {"groups": [{"name": "synth_{algorithm}_s{seed}", "config": "c.yaml", "algorithms": ["supervised", "fixmatch"],
                     "seeds": [0, 1], "set": TINY}]}
    (tmp_path / "grid.yaml").write_text(json.dumps(g))
    return tmp_path / "grid.yaml"


def test_grid_expands_to_paired_runs_with_seeded_splits(tmp_path):
    grid = load_grid(_grid(tmp_path))
    assert [p.name for p in grid] == ["synth_supervised_s0", "synth_supervised_s1", "synth_fixmatch_s0",
                                      "synth_fixmatch_s1"]
    # methods at one seed share the labeled split: split seed = training seed
    assert all(p.overrides["split.seed"] == p.overrides["train.seed"] for p in grid)


def test_record_writes_the_five_files_and_never_retrains_a_recorded_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    grid = load_grid(_grid(tmp_path))
    out = record_grid(grid, tmp_path, tmp_path / "results", {}, only=["synth_*_s0"], cache_dir=str(tmp_path / "c"))
    assert out == {"synth_supervised_s0": "", "synth_fixmatch_s0": ""}
    for name in out:
        assert sorted(p.name for p in (tmp_path / "results" / name).iterdir()) == sorted(ARTIFACTS)
    cmd = (tmp_path / "results" / "synth_fixmatch_s0" / "command.txt").read_text()
    assert "ssfer train --config c.yaml --set algo.name=fixmatch --set split.seed=0" in cmd
    recs = load_results(tmp_path / "results")
    assert recs["synth_fixmatch_s0"].config.algo.name == "fixmatch"
    assert [p.name for p in pending(grid, tmp_path / "results")] == ["synth_supervised_s1", "synth_fixmatch_s1"]
    assert record_grid(grid, tmp_path, tmp_path / "results", {}, only=["synth_*_s0"]) == {}
    assert main(["results", "status", "--grid", "grid.yaml", "--results-dir", "results"]) == 0


def test_a_missing_data_root_and_a_bad_grid_are_named(tmp_path):
    g = tmp_path / "g.yaml"
    g.write_text("groups:\n  - {name: a, config: configs/ferplus_fraction_10_cpu.yaml, algorithms: [supervised], "
                 "seeds: [0]}\n")
    out = record_grid(load_grid(g), REPO, tmp_path / "results", {})
    assert "pass --root ferplus=PATH" in out["a"]
    g.write_text("groups:\n  - {name: a, config: x.yaml, algorithms: [supervised, fixmatch], seeds: [0]}\n")
    with pytest.raises(ConfigError, match="run names repeat"):
        load_grid(g)
    g.write_text("groups:\n  - {name: 'a_{algorithm}', config: x.yaml, seeds: [0]}\n")
    with pytest.raises(ConfigError, match="groups\\[0\\]: missing 'algorithms'"):
        load_grid(g)
