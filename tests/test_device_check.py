"""benchmarks/device_check.sh --dry-run: the GPU machine's script, end to end on
the CPU with tiny sizes, so that it cannot rot between the rare GPU sessions."""
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "device_check.sh"


@pytest.mark.slow
def test_the_dry_run_writes_every_result_file_under_out(tmp_path):
    out = tmp_path / "device_out"
    env = {**os.environ, "PYTHON": sys.executable}
    r = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--out", str(out)], capture_output=True, text=True,
                       env=env, timeout=400, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dry_run"] is True and summary["device"] == "cpu"
    assert summary["all_ok"], summary["steps"]
    assert set(summary["steps"]) == {"env", "pytest_cuda", "bench", "views", "ferplus_run"}
    for name in ("device_check.log", "env.json", "pytest_cuda.xml", "pytest_cuda.log", "bench.json", "views.json",
                 "ferplus_run.json", "steps.tsv"):
        assert (out / name).is_file(), name
    assert not (out / "work").exists()  # working files (decode cache, unpacked tar) are removed

    suite = ET.parse(out / "pytest_cuda.xml").getroot().find("testsuite")
    assert int(suite.get("tests")) > 0 and int(suite.get("errors")) == 0 and int(suite.get("failures")) == 0
    if not torch.cuda.is_available():
        assert suite.get("skipped") == suite.get("tests")  # every CUDA test skips here, none errors

    ts = json.loads((out / "bench.json").read_text())["train_step"]
    assert ts["device"] == "cpu" and ts["peak_basis"] == "float32"
    assert set(ts["fraction_of_peak"]) == {"supervised", "fixmatch", "dta_snl"}
    assert all(f > 0 for f in ts["fraction_of_peak"].values())

    views = json.loads((out / "views.json").read_text())["rows"]
    assert [(v["size"], v["channels"]) for v in views] == [(48, 1), (112, 3)]
    assert all(v["strong_ratio"] > 0 for v in views)

    run = json.loads((out / "ferplus_run.json").read_text())
    assert run["data"].startswith("SynthFER (dry run") and summary["training_data"] == run["data"]
    assert not run["errors"] and set(run["runs"]) == {"supervised", "dta_snl"}
    for r in run["runs"].values():
        assert r["timed_steps"] == 3 and r["seconds_per_step"] > 0 and 0.0 <= r["test_accuracy"] <= 1.0
    assert "dry run 1" in (out / "device_check.log").read_text()


def test_the_script_names_an_unknown_argument():
    r = subprocess.run(["bash", str(SCRIPT), "--frobnicate"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "unknown argument '--frobnicate'" in r.stderr
