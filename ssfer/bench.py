"""``ssfer bench``: train-step throughput of supervised, FixMatch and DTA+SNL on
the same backbone and batch, in one process, plus the batched view pipeline
(``ssfer.views``) against a per-sample PIL reference.

A ratio of two step times is only as good as the conditions both were measured
under. Other load on the machine (a browser, a second job) comes and goes in
bursts: timing 20 steps of one algorithm, then 20 of the next, lets one burst
land on one algorithm alone (``benchmarks/README.md`` has an example). So the
algorithms take turns a step or a few at a time, over many rounds, in
an order that rotates each round; each round gives its own ratio, and the
report is their median with the min–max over rounds, which shows how steady
the machine was. One CPU thread by default: the measurement is then of the
work, not of how well the threads of three models share the cores.

Distance to the limit: each algorithm's step is also counted in FLOPs
(``torch.utils.flop_counter``, over one real ``Trainer.train_step``: the model's
matmuls and convolutions, forward and backward, teacher included; views,
thresholds and the optimizer count nothing) and set against a peak measured in
the same process, device and threads: the best rate of a large square matmul
(float32, and bfloat16 on CUDA, where the step runs under bf16 autocast).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import statistics
import time

import torch

from ssfer.config import Config
from ssfer.errors import ConfigError
from ssfer.views import Views

ALGOS = ("supervised", "fixmatch", "dta_snl")
RATIOS = {"fixmatch_over_supervised": ("fixmatch", "supervised"), "dta_snl_over_fixmatch": ("dta_snl", "fixmatch")}
# The views' reference is the per-image pipeline of the public SSL codebases'
# loader workers: torchvision.transforms.v2 on PIL images, one process. Images
# are uniform noise: the ops' cost does not depend on content.
BENCH_PAD = 0.125
BENCH_RANDAUG_N = 2
# torchvision's magnitude is a bin of 0..30, applied as is; ours (0..10) bounds a
# per-sample random strength; 15 is the mean strength of ours at m = 10
BENCH_TV_MAGNITUDE = 15


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run the block with ``n`` torch CPU threads (None: unchanged), then restore."""
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# A training config lends bench its network and step shape; the data stay SynthFER
# (the arithmetic does not depend on the faces), drawn at the config's size.
CONFIG_TRAIN_KEYS = ("batch_size", "mu", "optimizer", "channels_last", "amp", "compile", "clip_grad",
                     "label_smoothing", "labeled_sampling")
DEFAULT_SHAPE = {"batch_size": 32, "size": 48, "model": "resnet18"}


def bench_config(algo: str, device: str, batch_size: int | None = None, size: int | None = None,
                 model: str | None = None, config: str | None = None) -> Config:
    """The config ``step_times`` trains ``algo`` with: ``config``'s model section,
    image size and channels and its step's shape (``CONFIG_TRAIN_KEYS``) when a
    config file is given, then ``batch_size``, ``size`` and ``model`` where not None."""
    ov: dict = {}
    if config is not None:
        f = Config.from_yaml(config)
        ov.update({f"model.{k}": v for k, v in dataclasses.asdict(f.model).items()})
        ov.update({"data.size": f.data.size, "data.channels": f.data.channels})
        ov.update({f"train.{k}": getattr(f.train, k) for k in CONFIG_TRAIN_KEYS})
    else:
        ov.update({"train.batch_size": DEFAULT_SHAPE["batch_size"], "data.size": DEFAULT_SHAPE["size"],
                   "model.name": DEFAULT_SHAPE["model"]})
    for key, value in (("train.batch_size", batch_size), ("data.size", size), ("model.name", model)):
        if value is not None:
            ov[key] = value
    ov.update({"algo.name": algo, "data.n_train": 2000, "data.n_test": 200, "train.device": device,
               "train.steps": 10 ** 6, "train.progress": False, "train.log_every": 10 ** 6, "train.threads": 0})
    return Config.default().with_overrides(ov)


def step_flops(trainer) -> int:
    """FLOPs of one real ``trainer.train_step()`` (it trains: one more step is taken),
    as torch's flop counter counts them: matmuls and convolutions, forward and backward."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        trainer.train_step()
    _sync(trainer.device)
    return int(counter.get_total_flops())


PEAK_N = {"cpu": 2048, "cuda": 8192}  # square matmul side: large enough to run at the device's best rate


class MatmulPeak:
    """The best GFLOP/s seen over timed samples of ``n``×``n`` matmuls (2n³ FLOPs
    each) on ``device`` in ``dtype``, under the caller's torch CPU threads. Take
    samples between the steps being timed (``sample``), so that the peak is
    measured under the load the steps saw; ``result`` says how it was taken."""

    def __init__(self, device: str | torch.device, dtype: torch.dtype = torch.float32, n: int | None = None):
        self.device, self.dtype = torch.device(device), dtype
        self.n = n or PEAK_N.get(self.device.type, 2048)
        gen = torch.Generator().manual_seed(0)
        self.a = torch.randn(self.n, self.n, generator=gen).to(device=self.device, dtype=dtype)
        self.b = torch.randn(self.n, self.n, generator=gen).to(device=self.device, dtype=dtype)
        self.a @ self.b  # warm-up: library load, kernel choice
        _sync(self.device)
        t0 = time.perf_counter()
        self.a @ self.b
        _sync(self.device)
        # a sample long enough that the timer and a launch are noise (GPUs do 8192³ in ~1 ms)
        self.per_sample = max(1, int(0.02 / max(time.perf_counter() - t0, 1e-6)))
        self.best, self.samples = math.inf, 0

    def sample(self) -> None:
        _sync(self.device)
        t0 = time.perf_counter()
        for _ in range(self.per_sample):
            self.a @ self.b
        _sync(self.device)
        self.best = min(self.best, (time.perf_counter() - t0) / self.per_sample)
        self.samples += 1

    def result(self) -> dict:
        dtype = str(self.dtype).removeprefix("torch.")
        used = torch.get_num_threads() if self.device.type == "cpu" else None
        return {"gflops": 2 * self.n ** 3 / self.best / 1e9, "dtype": dtype, "n": self.n, "samples": self.samples,
                "matmuls_per_sample": self.per_sample, "threads": used,
                "how": f"best of {self.samples} timed samples of {self.per_sample} torch.matmul of {self.n}x{self.n} "
                       f"{dtype} on {self.device}" + (f", {used} thread(s)" if used else "")}


def matmul_peak(device: str | torch.device, dtype: torch.dtype = torch.float32, n: int | None = None,
                seconds: float = 1.0, threads: int | None = None) -> dict:
    """``MatmulPeak`` on its own: at least 3 samples, then until ``seconds``."""
    with torch_threads(threads):
        peak = MatmulPeak(device, dtype, n)
        start = time.perf_counter()
        while peak.samples < 3 or time.perf_counter() - start < seconds:
            peak.sample()
        return peak.result()


def _at_least(name: str, value: int, low: int) -> None:
    """Refuse a count below ``low`` (named as its ``ssfer bench`` flag) before
    anything is built: no round gives no median, a negative count of steps a
    negative time."""
    if value < low:
        raise ConfigError(f"--{name.replace('_', '-')}: must be at least {low}, got {value}")


def step_times(device: str = "auto", rounds: int = 30, steps_per_round: int = 1, batch_size: int | None = None,
               size: int | None = None, model: str | None = None, warmup: int = 3, threads: int | None = None,
               config: str | None = None, flops: bool = True, peak_seconds: float = 0.5) -> dict:
    """Seconds per train step of each of ``ALGOS``, interleaved: ``rounds`` rounds in
    which each algorithm runs ``steps_per_round`` steps. ``threads``: torch CPU
    threads while measuring (None: as set). Ratios are medians of per-round
    ratios, with their min and max over rounds. ``config``: a training config
    whose network and step shape to use (``bench_config``). ``flops``: count each
    step's FLOPs and measure the matmul peak (``MatmulPeak``: a sample after every
    round, then ``peak_seconds`` more), for the achieved GFLOP/s (FLOPs over the
    median step time) and its share of the peak."""
    from ssfer.train.loop import Trainer

    _at_least("rounds", rounds, 1)
    _at_least("steps_per_round", steps_per_round, 1)
    _at_least("warmup", warmup, 0)
    _at_least("threads", threads or 0, 0)
    with torch_threads(threads):
        trainers = {}
        for algo in ALGOS:
            cfg = bench_config(algo, device, batch_size, size, model, config)
            trainers[algo] = Trainer(cfg, run_dir=None)
        dev = trainers[ALGOS[0]].device
        for tr in trainers.values():
            for _ in range(warmup):
                tr.train_step()
        counted = {a: step_flops(tr) for a, tr in trainers.items()} if flops else None
        # the peak is sampled between the rounds, under the load the steps see
        peaks = {}
        if flops:
            peaks["float32"] = MatmulPeak(dev, torch.float32)
            if dev.type == "cuda":
                peaks["bfloat16"] = MatmulPeak(dev, torch.bfloat16)
        times: dict[str, list[float]] = {a: [] for a in ALGOS}
        for r in range(rounds):
            # rotate the order, so that no algorithm always runs right after the same one
            for algo in ALGOS[r % len(ALGOS):] + ALGOS[:r % len(ALGOS)]:
                tr = trainers[algo]
                _sync(dev)
                t0 = time.perf_counter()
                for _ in range(steps_per_round):
                    tr.train_step()
                _sync(dev)
                times[algo].append((time.perf_counter() - t0) / steps_per_round)
            for peak in peaks.values():
                peak.sample()
        for peak in peaks.values():  # at least three samples, and `peak_seconds` more of them
            start = time.perf_counter()
            while peak.samples < 3 or time.perf_counter() - start < peak_seconds:
                peak.sample()
        peaks = {k: v.result() for k, v in peaks.items()}
        used_threads = torch.get_num_threads()
    med = {a: statistics.median(v) for a, v in times.items()}
    fcfg = trainers["fixmatch"].cfg
    batch_size = fcfg.train.batch_size
    images = batch_size * (1 + fcfg.train.mu)
    out = {
        "device": str(dev), "model": fcfg.model.name, "size": fcfg.data.size, "channels": fcfg.data.channels,
        "config": config, "batch_labeled": batch_size, "batch_unlabeled": batch_size * fcfg.train.mu,
        "amp_bf16": trainers["fixmatch"].amp, "channels_last": fcfg.train.channels_last,
        "threads": used_threads if dev.type == "cpu" else None,
        "rounds": rounds, "steps_per_round": steps_per_round,
        "step_seconds": med,
        "images_per_second": {a: (batch_size if a == "supervised" else images) / s for a, s in med.items()},
    }
    for name, (a, b) in RATIOS.items():
        per_round = [ta / tb for ta, tb in zip(times[a], times[b])]
        out[f"ratio_{name}"] = statistics.median(per_round)
        out[f"ratio_{name}_range"] = [min(per_round), max(per_round)]
    if flops:
        # the step runs in bf16 where autocast is on (CUDA), so that is the peak it is held to
        basis = "bfloat16" if out["amp_bf16"] and "bfloat16" in peaks else "float32"
        achieved = {a: counted[a] / med[a] / 1e9 for a in ALGOS}
        out.update({
            "flops_per_step": counted,
            "flops_counted_by": "torch.utils.flop_counter.FlopCounterMode over one Trainer.train_step "
                                "(matmuls and convolutions, forward and backward, teacher included)",
            "achieved_gflops": achieved,
            "peak_gflops": {k: v["gflops"] for k, v in peaks.items()},
            "peak_how": {k: v["how"] for k, v in peaks.items()},
            "peak_basis": basis,
            "fraction_of_peak": {a: g / peaks[basis]["gflops"] for a, g in achieved.items()},
        })
    return out


def _rate(fn, n_images: int, seconds: float, sync=lambda: None) -> float:
    fn()  # warm-up (allocations, lazy init, kernel selection)
    sync()
    done, start = 0, time.perf_counter()
    while True:
        fn()
        sync()
        done += n_images
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def _images(batch: int, size: int, channels: int, device: str | torch.device) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (batch, channels, size, size), dtype=torch.uint8, generator=gen).to(device)


def pil_reference(size: int, channels: int, n_images: int = 256, seconds: float = 2.0) -> dict:
    """img/s of the per-image PIL weak and strong pipelines, collated to a batch."""
    from PIL import Image
    from torchvision.transforms import v2

    x = _images(n_images, size, channels, "cpu").permute(0, 2, 3, 1).numpy()
    pil = [Image.fromarray(a[..., 0] if channels == 1 else a) for a in x]
    pad = round(BENCH_PAD * size)
    tail = [v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * channels, [0.25] * channels)]
    weak = v2.Compose([v2.RandomHorizontalFlip(), v2.RandomCrop(size, padding=pad, padding_mode="reflect"), *tail])
    strong = v2.Compose([v2.RandomHorizontalFlip(), v2.RandomCrop(size, padding=pad, padding_mode="reflect"),
                         v2.RandAugment(num_ops=BENCH_RANDAUG_N, magnitude=BENCH_TV_MAGNITUDE), *tail,
                         v2.RandomErasing(p=1.0, scale=(0.02, 0.25), ratio=(1.0, 1.0), value=0)])
    torch.manual_seed(0)
    return {"pil_weak_img_s": _rate(lambda: torch.stack([weak(im) for im in pil]), n_images, seconds),
            "pil_strong_img_s": _rate(lambda: torch.stack([strong(im) for im in pil]), n_images, seconds)}


def bench_views(device: str | torch.device = "cpu", size: int = 112, channels: int = 3, batch: int = 256,
                seconds: float = 2.0, threads: int | None = None, reference: bool = True) -> dict:
    """img/s of Views.weak / Views.strong on ``device`` (uint8 batch already
    there), optionally with the PIL reference and the ratios to it.
    ``threads``: torch CPU threads during the measurement (restored after)."""
    device = torch.device(device)
    x = _images(batch, size, channels, device)
    views = Views([0.5] * channels, [0.25] * channels, crop_pad=BENCH_PAD, randaug_n=BENCH_RANDAUG_N).to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    sync = functools.partial(_sync, device)
    with torch_threads(threads):
        out = {"device": str(device), "size": size, "channels": channels, "batch": batch,
               "threads": torch.get_num_threads() if device.type == "cpu" else None,
               "weak_img_s": _rate(lambda: views.weak(x, gen), batch, seconds, sync),
               "strong_img_s": _rate(lambda: views.strong(x, gen), batch, seconds, sync)}
        if reference:
            out.update(pil_reference(size, channels, batch, seconds))
    if reference:
        out["weak_ratio"] = out["weak_img_s"] / out["pil_weak_img_s"]
        out["strong_ratio"] = out["strong_img_s"] / out["pil_strong_img_s"]
    return out


def main(args) -> int:
    threads = getattr(args, "threads", 1)
    if getattr(args, "views_seconds", 2.0) <= 0:
        raise ConfigError(f"--views-seconds: must be positive, got {args.views_seconds}")
    out = {"train_step": step_times(args.device, args.rounds, args.steps_per_round, args.batch_size, args.size,
                                    args.model, threads=threads, config=getattr(args, "config", None),
                                    flops=not getattr(args, "no_flops", False))}
    ts = out["train_step"]
    out["views"] = bench_views(device=ts["device"], size=ts["size"], channels=ts["channels"], batch=256,
                               seconds=getattr(args, "views_seconds", 2.0), threads=threads)
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    ts = out["train_step"]
    on = f"{ts['device']}, {ts['threads']} thread(s)" if ts["threads"] else ts["device"]
    print(f"train step on {on}: {ts['model']} at {ts['size']} px, "
          f"{ts['batch_labeled']} labeled + {ts['batch_unlabeled']} unlabeled per step; "
          f"{ts['rounds']} rounds of {ts['steps_per_round']} step(s) per algorithm, interleaved")
    has_flops = "flops_per_step" in ts
    for a in ALGOS:
        line = f"  {a:11s} {1000 * ts['step_seconds'][a]:8.1f} ms/step  {ts['images_per_second'][a]:8.1f} img/s"
        if has_flops:
            line += (f"  {ts['flops_per_step'][a] / 1e9:7.2f} GFLOP/step  {ts['achieved_gflops'][a]:8.1f} GFLOP/s"
                     f"  {100 * ts['fraction_of_peak'][a]:5.1f} % of peak")
        print(line)
    if has_flops:
        basis = ts["peak_basis"]
        for dtype, g in ts["peak_gflops"].items():
            mark = "  <- the peak above" if dtype == basis else ""
            print(f"  peak {dtype}: {g:.1f} GFLOP/s ({ts['peak_how'][dtype]}){mark}")
        print(f"  FLOPs: {ts['flops_counted_by']}")
    for label, name, note in (("FixMatch / supervised", "fixmatch_over_supervised", ""),
                              ("DTA+SNL / FixMatch", "dta_snl_over_fixmatch", "; target <= 1.05")):
        lo, hi = ts[f"ratio_{name}_range"]
        print(f"  {label + ' step time:':32s} {ts[f'ratio_{name}']:.3f}  (min-max over rounds {lo:.3f}-{hi:.3f}{note})")
    print("views:", json.dumps(out["views"], indent=1))
    return 0
