"""benchmarks/confidence_share.py: the share of faces a finished teacher is sure of."""
import importlib.util
from pathlib import Path

from ssfer.config import Config
from ssfer.train import run

REPO = Path(__file__).resolve().parents[1]


def test_the_confidence_benchmark_reads_a_finished_run(tmp_path, capsys, two_step_overrides):
    cfg = Config.from_yaml(REPO / "configs" / "synthfer_dta_snl.yaml").with_overrides(two_step_overrides)
    rec = run(cfg, cache_dir=str(tmp_path))
    spec = importlib.util.spec_from_file_location("confidence_share", REPO / "benchmarks" / "confidence_share.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main([str(rec.run_dir), "--thresholds", "0", "1"]) == 0
    out = capsys.readouterr().out
    # every face's top probability is above 0 and none above 1
    assert "> 0: 100.0 %, > 1: 0.0 %" in out and "dta_snl" in out
