from types import SimpleNamespace

import torch

from ssfer.bench import ALGOS, bench_views, main, step_times


def test_step_times_interleaves_rounds_and_reports_per_round_ratios(monkeypatch):
    from ssfer.train.loop import Trainer

    order = []
    real = Trainer.train_step

    def spy(self):
        order.append(self.cfg.algo.name)
        return real(self)

    monkeypatch.setattr(Trainer, "train_step", spy)
    threads = torch.get_num_threads()
    out = step_times(device="cpu", rounds=3, steps_per_round=1, batch_size=8, size=32, model="test_resnet",
                     warmup=0, threads=1)
    assert torch.get_num_threads() == threads  # restored
    assert out["threads"] == 1 and out["rounds"] == 3
    # one step per algorithm per turn, the order rotating each round
    assert order == ["supervised", "fixmatch", "dta_snl", "fixmatch", "dta_snl", "supervised",
                     "dta_snl", "supervised", "fixmatch"]
    assert set(out["step_seconds"]) == set(ALGOS)
    assert all(v > 0 for v in out["step_seconds"].values())
    for name in ("fixmatch_over_supervised", "dta_snl_over_fixmatch"):
        lo, hi = out[f"ratio_{name}_range"]
        assert lo <= out[f"ratio_{name}"] <= hi


def test_bench_cli_prints_each_ratio_with_its_range_over_rounds(capsys, monkeypatch):
    import ssfer.bench

    monkeypatch.setattr(ssfer.bench, "bench_views", lambda **k: {"stub": True})  # views have their own test
    args = SimpleNamespace(device="cpu", rounds=2, steps_per_round=1, batch_size=8, size=32, model="test_resnet",
                           json=False, threads=1)
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "1 thread(s)" in out and "2 rounds of 1 step(s)" in out
    assert out.count("min-max over rounds") == 2 and "DTA+SNL / FixMatch step time" in out


def test_the_command_defaults_to_one_thread_and_many_short_turns():
    from ssfer.cli import build_parser

    args = build_parser().parse_args(["bench"])
    assert args.threads == 1 and args.steps_per_round == 1 and args.rounds >= 20


def test_bench_views_reports_rates_and_ratios():
    r = bench_views("cpu", size=16, channels=3, batch=8, seconds=0.01, threads=1)
    for key in ("weak_img_s", "strong_img_s", "pil_weak_img_s", "pil_strong_img_s", "weak_ratio", "strong_ratio"):
        assert r[key] > 0, key
    assert r["threads"] == 1 and r["device"] == "cpu"
    assert r["strong_ratio"] == r["strong_img_s"] / r["pil_strong_img_s"]
