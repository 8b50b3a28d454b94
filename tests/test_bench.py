from types import SimpleNamespace

from ssfer.bench import ALGOS, main, step_times


def test_step_times_reports_every_algorithm_and_ratios():
    out = step_times(device="cpu", steps=2, batch_size=8, size=32, model="test_resnet", rounds=1, warmup=1)
    assert set(out["step_seconds"]) == set(ALGOS)
    assert all(v > 0 for v in out["step_seconds"].values())
    assert out["ratio_dta_snl_over_fixmatch"] == out["step_seconds"]["dta_snl"] / out["step_seconds"]["fixmatch"]


def test_bench_cli_prints_the_ratio_line(capsys, monkeypatch):
    import ssfer.views

    monkeypatch.setattr(ssfer.views, "bench_views", lambda **k: {"stub": True})  # views have their own test
    args = SimpleNamespace(device="cpu", steps=1, batch_size=8, size=32, model="test_resnet", json=False)
    assert main(args) == 0
    assert "DTA+SNL / FixMatch step time" in capsys.readouterr().out
