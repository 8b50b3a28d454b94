from types import SimpleNamespace

import pytest
import torch

from ssfer.bench import ALGOS, bench_config, bench_views, main, matmul_peak, step_flops, step_times


@pytest.mark.slow  # a benchmark: timed training steps of every algorithm
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
                     warmup=0, threads=1, flops=False)
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


@pytest.mark.slow  # a benchmark: timed training steps of every algorithm
def test_bench_cli_prints_each_ratio_with_its_range_over_rounds(capsys, monkeypatch):
    import ssfer.bench

    monkeypatch.setattr(ssfer.bench, "bench_views", lambda **k: {"stub": True})  # views have their own test
    args = SimpleNamespace(device="cpu", rounds=2, steps_per_round=1, batch_size=8, size=32, model="test_resnet",
                           json=False, threads=1)
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "1 thread(s)" in out and "2 rounds of 1 step(s)" in out
    assert out.count("min-max over rounds") == 2 and "DTA+SNL / FixMatch step time" in out
    assert out.count("% of peak") == len(ALGOS) and "peak float32" in out and "torch.matmul" in out


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


@pytest.mark.slow  # a benchmark: timed training steps of every algorithm
def test_step_flops_counts_one_real_train_step_and_grows_with_the_batch():
    from ssfer.train.loop import Trainer

    counts = {}
    for algo, batch in (("supervised", 4), ("supervised", 8), ("fixmatch", 4)):
        tr = Trainer(bench_config(algo, "cpu", batch_size=batch, size=16, model="test_resnet"), run_dir=None)
        counts[algo, batch] = step_flops(tr)
        assert tr.step == 1  # the counted step is a real one
    assert counts["supervised", 4] > 0
    # conv arithmetic is linear in the batch: twice the faces, twice the FLOPs
    assert counts["supervised", 8] == 2 * counts["supervised", 4]
    # FixMatch: the student on 4 + 4·mu faces and the teacher's forward on 4·mu more
    assert counts["fixmatch", 4] > (1 + 3) * counts["supervised", 4]


def test_matmul_peak_says_how_it_was_taken():
    r = matmul_peak("cpu", torch.float32, n=64, seconds=0.0, threads=1)
    assert r["gflops"] > 0 and r["samples"] >= 3 and r["threads"] == 1 and r["n"] == 64
    assert "64x64 float32" in r["how"] and "1 thread" in r["how"]


@pytest.mark.slow  # a benchmark: timed training steps of every algorithm
def test_step_times_reports_flops_rates_and_their_share_of_the_measured_peak():
    out = step_times(device="cpu", rounds=2, batch_size=4, size=16, model="test_resnet", warmup=0, threads=1,
                     peak_seconds=0.0)
    assert out["peak_basis"] == "float32" and set(out["peak_gflops"]) == {"float32"}  # no bf16 peak on the CPU
    for a in ALGOS:
        assert out["achieved_gflops"][a] == out["flops_per_step"][a] / out["step_seconds"][a] / 1e9
        assert out["fraction_of_peak"][a] == out["achieved_gflops"][a] / out["peak_gflops"]["float32"]
    assert "FlopCounterMode" in out["flops_counted_by"] and "matmul" in out["peak_how"]["float32"]


def test_a_training_config_lends_bench_its_network_and_step_shape():
    cfg = bench_config("fixmatch", "cpu", config="configs/ferplus_fraction_10_cpu.yaml")
    assert cfg.data.dataset == "synthfer"  # the arithmetic, not the faces
    assert cfg.model.name == "resnet10t" and cfg.model.stem == "small_pool"
    assert cfg.model.timm_args["output_stride"] == 16
    assert (cfg.data.size, cfg.data.channels, cfg.train.batch_size, cfg.train.mu) == (48, 1, 32, 3)
    assert cfg.train.threads == 0  # bench sets the threads, not the config
    assert bench_config("fixmatch", "cpu", batch_size=8, config="configs/ferplus_fraction_10_cpu.yaml").train.batch_size == 8
