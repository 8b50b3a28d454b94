"""A 2-process DDP run (gloo, CPU) under torchrun follows the 1-process run.

Both draw the same global batches; DDP averages the two shards' gradients. They
differ only through batch-norm statistics, computed per shard: the tolerance
below is for that.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ssfer.record import RunRecord

TOL_LOSS = 0.10       # relative, per logged step (batch-norm statistics of 2 shards of 12 images)
TOL_ACCURACY = 0.10   # absolute, final test accuracy


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(cmd_prefix, overrides, cache, env):
    argv = [*cmd_prefix, "train", "--cache-dir", str(cache)]
    for k, v in overrides.items():
        argv += ["--set", f"{k}={json.dumps(v)}"]
    out = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return RunRecord.load(json.loads(out.stdout[out.stdout.index("{"):])["run_dir"])


@pytest.mark.slow
def test_two_process_gloo_matches_one_process(tiny_overrides, tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun not found next to this Python")
    ov = {**tiny_overrides, "algo.name": "fixmatch", "train.steps": 6, "train.log_every": 2,
          "train.threads": 1, "model.feature_dropout": "none"}
    env = {**os.environ, "SSFER_DDP_BACKEND": "gloo", "OMP_NUM_THREADS": "1"}
    one = _train([sys.executable, "-m", "ssfer.cli"], ov, tmp_path / "one", env)
    two = _train([torchrun, "--nproc-per-node", "2", "--master-port", str(_free_port()), "-m", "ssfer.cli"],
                 ov, tmp_path / "two", env)
    assert [h["step"] for h in one.history] == [h["step"] for h in two.history]
    for a, b in zip(one.history, two.history):
        assert b["loss"] == pytest.approx(a["loss"], rel=TOL_LOSS)
        assert b["mask_rate"] == pytest.approx(a["mask_rate"], abs=0.05)
    assert abs(one.summary["accuracy"] - two.summary["accuracy"]) <= TOL_ACCURACY


@pytest.mark.slow
def test_a_data_error_under_torchrun_is_one_line_per_rank_and_every_rank_fails(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun not found next to this Python")
    argv = [torchrun, "--nproc-per-node", "2", "--master-port", str(_free_port()), "-m", "ssfer.cli",
            "train", "--cache-dir", str(tmp_path)]
    for kv in ("data.n_train=60", "data.n_test=20", "data.size=16", "model.name=test_resnet",
               "train.device=cpu", "train.progress=false"):
        argv += ["--set", kv]
    env = {**os.environ, "SSFER_DDP_BACKEND": "gloo", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode != 0
    lines = [ln for ln in out.stderr.splitlines() if ": data error: " in ln]
    assert lines and all(ln.startswith(("ssfer (rank 0): ", "ssfer (rank 1): ")) for ln in lines), out.stderr
    assert all(ln.endswith("has 6 train samples; asked for 10 labeled + 0 val") for ln in lines)
    assert "DataError" not in out.stderr  # no rank printed a traceback (torchrun's own report has one)
    assert "rank      : 0" in out.stderr and "rank      : 1" in out.stderr  # neither rank exited 0
