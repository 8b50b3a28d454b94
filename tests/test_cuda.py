"""The trainer's CUDA paths: bf16 autocast, no host sync inside a step, data and
views on the device, threshold state on the device (also after a resume), DDP
over NCCL.

They run only where a GPU is visible and skip, with the reason, elsewhere;
``benchmarks/device_check.sh`` runs them (``pytest -m cuda``) on a GPU machine.
None of them has run on a GPU yet: three of them are written to fail on what
reading the code says is wrong (named in their docstrings), not to pass.
"""
import math
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

from ssfer.algo.compose import RECIPES
from ssfer.algo.thresholds import THRESHOLDS, StepStats, build_threshold
from ssfer.config import Config
from ssfer.views import Views

NO_CUDA = ("needs a CUDA GPU, and torch.cuda.is_available() is False here "
           "(benchmarks/device_check.sh runs these on a GPU machine)")
pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)]

WARMUP = 2    # steps before watching: the first builds the epoch's permutation, lazy CUDA state, kernels
WATCHED = 3   # steps under torch.cuda.set_sync_debug_mode("error")


def cuda_config(**overrides) -> Config:
    """A few-second run on one GPU: 600 SynthFER faces, 28 of them labeled, so
    that WARMUP + WATCHED steps of 16 unlabeled faces stay inside the first
    pass over the unlabeled set (the epoch boundary has its own test)."""
    base = {"data.n_train": 600, "data.n_test": 64, "data.size": 32, "model.name": "test_resnet",
            "split.n_per_class": 4, "train.steps": 100, "train.batch_size": 8, "train.mu": 2,
            "train.log_every": 10 ** 6, "train.eval_every": 0, "train.progress": False, "train.device": "cuda"}
    return Config.default().with_overrides({**base, **overrides})


def trainer(**overrides):
    from ssfer.train.loop import Trainer

    return Trainer(cuda_config(**overrides), run_dir=None)


def steps_without_sync(tr, n: int) -> None:
    """``n`` train steps during which any synchronising CUDA call raises."""
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(n):
            tr.train_step()
    finally:
        torch.cuda.set_sync_debug_mode(0)  # global state: never leak it into the next test
    torch.cuda.synchronize()


# ---- bf16 autocast ----------------------------------------------------------------

def test_a_bf16_autocast_step_has_finite_losses_with_bf16_convolutions_and_float32_weights():
    tr = trainer(**{"algo.name": "dta_snl", "model.name": "resnet18", "data.size": 48, "train.channels_last": True})
    assert tr.amp and tr.device.type == "cuda"
    conv = next(m for m in tr.student.modules() if isinstance(m, torch.nn.Conv2d))
    seen = set()
    hook = conv.register_forward_hook(lambda m, i, o: seen.add(o.dtype))
    try:
        for _ in range(5):
            tr.train_step()
    finally:
        hook.remove()
    means = tr._mean_losses()  # the log's host read: total, sup, pos, neg
    assert all(math.isfinite(v) for v in means), means
    assert means[1] > 0  # a supervised loss was computed, not a zero
    assert seen == {torch.bfloat16}  # autocast is on for the student's convolutions
    assert all(p.dtype == torch.float32 for p in tr.student.parameters())  # autocast, not a bf16 model
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_a_short_bf16_run_evaluates_on_the_device_and_reports_finite_metrics():
    from ssfer.train.loop import Trainer

    rec = Trainer(cuda_config(**{"algo.name": "fixmatch", "train.steps": 6, "train.log_every": 2,
                                 "train.eval_every": 3}), run_dir=None).fit()
    assert rec.summary["device"].startswith("cuda")
    assert 0.0 <= rec.summary["accuracy"] <= 1.0
    assert all(math.isfinite(h["loss"]) for h in rec.history)


# ---- no host sync inside a step -------------------------------------------------------

@pytest.mark.parametrize("algo", sorted(RECIPES))
def test_train_step_does_not_sync_with_the_host_after_warm_up(algo):
    tr = trainer(**{"algo.name": algo})
    for _ in range(WARMUP):
        tr.train_step()
    if tr.use_unlabeled:
        assert (WARMUP + WATCHED) * tr.batch_u <= len(tr.data.unlabeled)  # one epoch: see the next test
    steps_without_sync(tr, WATCHED)
    assert tr.step == WARMUP + WATCHED
    assert bool(torch.isfinite(tr.sums).all())


def test_a_step_that_starts_a_new_pass_over_the_unlabeled_set_does_not_sync():
    """``Trainer._epoch_perm`` draws each epoch's permutation on the CPU; a pageable
    ``.to(self.device)`` copy of it would wait for the GPU once per epoch, so on
    CUDA it goes through pinned memory, non-blocking (found by reading the code
    before any GPU run; this test is its check)."""
    tr = trainer(**{"algo.name": "fixmatch", "data.n_train": 200, "train.batch_size": 16})
    per_epoch = len(tr.data.unlabeled) / tr.batch_u
    assert 1 < per_epoch < 8  # the watched steps below cross an epoch boundary
    tr.train_step()
    steps_without_sync(tr, math.ceil(per_epoch) + 1)


@pytest.mark.parametrize("channels", [1, 3])
def test_views_do_not_sync_with_the_host(channels):
    """``ssfer.tone.contrast_lut`` once built ``new_tensor(LUMA)`` from a Python tuple,
    a host-to-device copy, in every strong view of 3-channel images; it now keeps
    one LUMA tensor per device (``tone._luma``). This test is the check."""
    views = Views([0.5] * channels, [0.25] * channels).to("cuda")
    gen = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randint(0, 256, (64, channels, 32, 32), dtype=torch.uint8, device="cuda")
    views.weak(x, gen), views.strong(x, gen)  # warm-up
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        weak, strong = views.weak(x, gen), views.strong(x, gen)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert weak.device.type == strong.device.type == "cuda"
    assert bool(torch.isfinite(strong).all())


# ---- data and views on the device --------------------------------------------------------

def test_the_data_set_lives_on_the_device_and_views_are_computed_there(monkeypatch):
    seen = []

    def spy(real, name):
        def view(self, x, gen=None):
            out = real(self, x, gen)
            seen.append((name, x.device.type, x.dtype, out.device.type, out.dtype, gen.device.type))
            return out
        return view

    monkeypatch.setattr(Views, "weak", spy(Views.weak, "weak"))
    monkeypatch.setattr(Views, "strong", spy(Views.strong, "strong"))
    tr = trainer(**{"algo.name": "dta_snl"})
    d = tr.data
    for name in ("train_x", "train_y", "labeled", "unlabeled", "test_x", "test_y"):
        assert getattr(d, name).device.type == "cuda", name
    assert d.train_x.dtype == torch.uint8  # whole, undecoded once, augmented per step
    assert tr.labeled_weights.device.type == "cuda" and tr.gen.device.type == "cuda"
    tr.train_step()
    assert sorted(s[0] for s in seen) == ["strong", "weak", "weak"]  # labeled weak, unlabeled weak and strong
    assert all(s[1:] == ("cuda", torch.uint8, "cuda", torch.float32, "cuda") for s in seen), seen
    assert tr._perm.device.type == "cuda"


def test_the_strong_view_on_cuda_matches_the_cpu_for_the_same_draws(monkeypatch):
    """The CUDA path differs from the CPU's (histograms by index_add_, colour and
    sharpness under a mask instead of on a subset): with the same random draws
    (made on the CPU and copied), the views agree. Geometry rounds source pixels
    to the nearest; a float rounding on either side may move a rare one."""
    draws = torch.Generator().manual_seed(0)
    monkeypatch.setattr(Views, "_uniform",
                        staticmethod(lambda shape, x, gen: torch.rand(shape, generator=draws).to(x.device)))
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    views = Views([0.5] * 3, [0.25] * 3)
    cpu = views.strong(x)
    draws.manual_seed(0)
    gpu = views.to("cuda").strong(x.to("cuda")).cpu()
    differ = ((cpu - gpu).abs() > 1e-4).float().mean().item()
    assert differ < 0.01, f"{differ:.2%} of the values differ between the CPU and CUDA strong views"


# ---- threshold state on the device ---------------------------------------------------------

def _stats(c: int, n_unl: int, progress: float, epoch: int) -> StepStats:
    g = torch.Generator(device="cuda").manual_seed(0)
    probs_u = torch.randn(16, c, device="cuda", generator=g).mul(3).softmax(1)
    probs_l = torch.randn(8, c, device="cuda", generator=g).mul(3).softmax(1)
    idx_u = torch.randperm(n_unl, device="cuda", generator=g)[:16]
    labels_l = torch.randint(0, c, (8,), device="cuda", generator=g)
    return StepStats(probs_u=probs_u, idx_u=idx_u, probs_l=probs_l, labels_l=labels_l, progress=progress,
                     epoch=epoch)


@pytest.mark.parametrize("kind", sorted(THRESHOLDS))
def test_threshold_state_moves_to_the_device_and_updates_there_without_a_sync(kind):
    thr = build_threshold(kind, 7, 100).to("cuda")
    buffers = dict(thr.named_buffers())
    assert buffers and all(b.device.type == "cuda" for b in buffers.values()), buffers
    thr.update(_stats(7, 100, 0.1, 0))
    thr.mask(_stats(7, 100, 0.1, 0).probs_u)
    s = _stats(7, 100, 0.5, 1)  # a new epoch: Ada-CM applies its statistics
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        thr.update(s)
        mask = thr.mask(s.probs_u)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert mask.device.type == "cuda" and mask.shape == (16,)
    assert thr.per_class().device.type == "cuda"
    assert all(b.device.type == "cuda" for b in thr.buffers())


@pytest.mark.parametrize("algo", ["flexmatch", "adacm", "dta_snl"])
def test_threshold_state_is_on_the_device_after_a_resume_from_a_checkpoint(algo, tmp_path):
    """``Trainer.try_resume`` loads the checkpoint with ``map_location=self.device``,
    which moves the saved RNG states to the GPU too, and ``Generator.set_state`` /
    ``torch.set_rng_state`` / ``torch.cuda.set_rng_state`` take only a CPU
    ByteTensor ("RNG state must be a torch.ByteTensor"): ``load_state_dict`` hands
    them ``.cpu()`` copies. This test is the check."""
    from ssfer.train.loop import Trainer

    cfg = cuda_config(**{"algo.name": algo})
    a = Trainer(cfg, run_dir=tmp_path)
    for _ in range(3):
        a.train_step()
    a.save_checkpoint()
    b = Trainer(cfg, run_dir=tmp_path)
    assert b.try_resume() and b.step == 3
    for name, buf in b.threshold.named_buffers():
        assert buf.device.type == "cuda", name
        assert torch.equal(buf, a.threshold.get_buffer(name)), name
    assert b.gen.device.type == "cuda"
    assert torch.equal(b.gen.get_state(), a.gen.get_state())  # the resumed run draws what the first would
    b.train_step()
    assert all(buf.device.type == "cuda" for buf in b.threshold.buffers())


# ---- DDP over NCCL ----------------------------------------------------------------------

from test_ddp import _free_port, _train  # noqa: E402  one copy of the torchrun helpers


@pytest.mark.skipif(torch.cuda.device_count() < 2,
                    reason=f"DDP over NCCL needs two visible GPUs; {torch.cuda.device_count()} visible")
def test_two_process_nccl_run_follows_the_one_process_run(tiny_overrides, tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun not found next to this Python")
    ov = {**tiny_overrides, "algo.name": "dta_snl", "train.device": "cuda", "train.steps": 6,
          "train.log_every": 2, "model.feature_dropout": "none"}
    env = {k: v for k, v in os.environ.items() if k != "SSFER_DDP_BACKEND"}  # NCCL, the CUDA default
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                      env.get("PYTHONPATH")]))
    one = _train([sys.executable, "-m", "ssfer.cli"], ov, tmp_path / "one", env)
    two = _train([torchrun, "--nproc-per-node", "2", "--master-port", str(_free_port()), "-m", "ssfer.cli"],
                 ov, tmp_path / "two", env)
    assert two.summary["device"] == "cuda:0"  # rank 0 wrote the record, on its own GPU
    assert [h["step"] for h in one.history] == [h["step"] for h in two.history]
    for a, b in zip(one.history, two.history):
        # batch norm over 2 shards of 4 faces, and bf16: looser than tests/test_ddp.py's gloo bound
        assert b["loss"] == pytest.approx(a["loss"], rel=0.15)
        assert b["thresholds"] == pytest.approx(a["thresholds"], abs=0.05)  # gathered: one state on every rank
    assert abs(one.summary["accuracy"] - two.summary["accuracy"]) <= 0.15
