"""``python -m ssfer`` is the ``ssfer`` command."""
import json
import subprocess
import sys

import pytest


@pytest.mark.slow  # trains in subprocesses
def test_python_dash_m_ssfer_runs_the_command_line(tmp_path):
    help_ = subprocess.run([sys.executable, "-m", "ssfer", "--help"], capture_output=True, text=True, timeout=120)
    assert help_.returncode == 0 and help_.stdout.startswith("usage: ssfer")
    sets = ["data.n_train=300", "data.n_test=40", "data.size=16", "split.n_per_class=2", "model.name=test_resnet",
            "algo.name=supervised", "train.steps=2", "train.batch_size=4", "train.eval_every=0",
            "train.progress=false", "train.device=cpu"]
    argv = [sys.executable, "-m", "ssfer", "train", "--cache-dir", str(tmp_path)]
    for s in sets:
        argv += ["--set", s]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["algorithm"] == "supervised"
    bad = subprocess.run([sys.executable, "-m", "ssfer", "train", "--set", "train.stepz=1"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "train.stepz" in bad.stderr
