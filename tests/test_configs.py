"""The ready-made protocol configs in configs/: each loads, validates, says in its
name what it runs, and (the SynthFER one) trains through the command line."""
import json
import re
from pathlib import Path

import pytest

from ssfer.cli import main
from ssfer.config import Config
from ssfer.data import DataError
from ssfer.train.data import prepare

# training configs; the pretraining ones (a config of another type) are checked in tests/test_pretrain.py
CONFIGS = sorted(p for p in (Path(__file__).resolve().parents[1] / "configs").glob("*.yaml") if "_pretrain" not in p.stem)
REAL = [p for p in CONFIGS if not p.name.startswith("synthfer")]


def test_the_protocols_of_the_design_have_a_config():
    names = {p.stem for p in CONFIGS}
    assert {"rafdb_adacm_4000_dta_snl", "rafdb_fraction_10_dta_snl", "affectnet7_fraction_1_dta_snl",
            "ferplus_fraction_10_dta_snl", "fer2013_per_class_100_dta_snl", "synthfer_dta_snl"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_loads_and_matches_its_name(path):
    cfg = Config.from_yaml(path)
    stem = path.stem
    dataset = stem.split("_")[0].rstrip("78")  # affectnet7 -> affectnet
    assert cfg.data.dataset == dataset
    # a protocol's DTA+SNL config, or its CPU-scale version (any algorithm via --set algo.name=...)
    assert cfg.algo.name == "dta_snl" and stem.endswith(("_dta_snl", "_cpu"))
    if stem.endswith("_cpu"):
        assert (cfg.train.device, cfg.train.threads) == ("cpu", 1) and cfg.model.stem.startswith("small")
    if m := re.search(r"_adacm_(\d+)_", stem):
        assert (cfg.split.protocol, cfg.split.total) == ("adacm_rafdb", int(m.group(1)))
    elif m := re.search(r"_fraction_(\d+)_", stem):
        assert cfg.split.protocol == "fraction"
        assert cfg.split.fraction == pytest.approx(int(m.group(1)) / 100)
    elif m := re.search(r"_per_class_(\d+)_", stem):
        assert (cfg.split.protocol, cfg.split.n_per_class) == ("per_class", int(m.group(1)))
    if stem.startswith("affectnet"):
        assert cfg.data.options["num_classes"] == int(stem[len("affectnet")])
    # the YAML round-trips: what a run records is what the file said
    assert Config.from_dict(cfg.to_dict()).hash() == cfg.hash()


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.stem)
def test_real_config_root_is_a_placeholder_the_user_overrides(path):
    cfg = Config.from_yaml(path)
    assert cfg.data.root.startswith("/path/to/")
    with pytest.raises(DataError, match=re.escape(cfg.data.root)):
        prepare(cfg, device=__import__("torch").device("cpu"))
    moved = cfg.with_overrides(["data.root=/data/elsewhere"])
    assert moved.data.root == "/data/elsewhere" and moved.split == cfg.split


def test_synthfer_config_trains_two_steps_from_the_command_line(tmp_path, capsys):
    path = next(p for p in CONFIGS if p.stem == "synthfer_dta_snl")
    sets = ["train.steps=2", "train.log_every=1", "train.eval_every=0", "train.progress=false",
            "data.n_train=300", "data.n_test=40", "data.size=16", "split.n_per_class=2",
            "train.batch_size=4", "train.mu=2"]
    argv = ["train", "--config", str(path), "--cache-dir", str(tmp_path)]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    run_dir = Path(out["run_dir"])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["algorithm"] == "dta_snl"
    assert summary["threshold"] == "dta" and summary["negatives"] == "snl"
    assert summary["n_labeled"] == 2 * 7
    recorded = Config.from_yaml(run_dir / "config.yaml")
    assert recorded == Config.from_yaml(path).with_overrides(sets)
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2
