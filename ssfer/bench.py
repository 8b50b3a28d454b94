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
"""
from __future__ import annotations

import contextlib
import functools
import json
import statistics
import time

import torch

from ssfer.config import Config
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


def step_times(device: str = "auto", rounds: int = 30, steps_per_round: int = 1, batch_size: int = 32,
               size: int = 48, model: str = "resnet18", warmup: int = 3, threads: int | None = None) -> dict:
    """Seconds per train step of each of ``ALGOS``, interleaved: ``rounds`` rounds in
    which each algorithm runs ``steps_per_round`` steps. ``threads``: torch CPU
    threads while measuring (None: as set). Ratios are medians of per-round
    ratios, with their min and max over rounds."""
    from ssfer.train.loop import Trainer

    with torch_threads(threads):
        trainers = {}
        for algo in ALGOS:
            cfg = Config.default().with_overrides({
                "algo.name": algo, "data.size": size, "data.n_train": 2000, "data.n_test": 200,
                "model.name": model, "train.batch_size": batch_size, "train.device": device,
                "train.steps": 10 ** 6, "train.progress": False, "train.log_every": 10 ** 6,
            })
            trainers[algo] = Trainer(cfg, run_dir=None)
        dev = trainers[ALGOS[0]].device
        for tr in trainers.values():
            for _ in range(warmup):
                tr.train_step()
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
        used_threads = torch.get_num_threads()
    med = {a: statistics.median(v) for a, v in times.items()}
    images = batch_size * (1 + trainers["fixmatch"].cfg.train.mu)
    out = {
        "device": str(dev), "model": model, "size": size, "batch_labeled": batch_size,
        "batch_unlabeled": batch_size * trainers["fixmatch"].cfg.train.mu,
        "threads": used_threads if dev.type == "cpu" else None,
        "rounds": rounds, "steps_per_round": steps_per_round,
        "step_seconds": med,
        "images_per_second": {a: (batch_size if a == "supervised" else images) / s for a, s in med.items()},
    }
    for name, (a, b) in RATIOS.items():
        per_round = [ta / tb for ta, tb in zip(times[a], times[b])]
        out[f"ratio_{name}"] = statistics.median(per_round)
        out[f"ratio_{name}_range"] = [min(per_round), max(per_round)]
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
    out = {"train_step": step_times(args.device, args.rounds, args.steps_per_round, args.batch_size, args.size,
                                    args.model, threads=threads)}
    out["views"] = bench_views(device=out["train_step"]["device"], size=args.size, channels=1, batch=256,
                               seconds=2.0, threads=threads)
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    ts = out["train_step"]
    on = f"{ts['device']}, {ts['threads']} thread(s)" if ts["threads"] else ts["device"]
    print(f"train step on {on}: {ts['model']} at {ts['size']} px, "
          f"{ts['batch_labeled']} labeled + {ts['batch_unlabeled']} unlabeled per step; "
          f"{ts['rounds']} rounds of {ts['steps_per_round']} step(s) per algorithm, interleaved")
    for a in ALGOS:
        print(f"  {a:11s} {1000 * ts['step_seconds'][a]:8.1f} ms/step  {ts['images_per_second'][a]:8.1f} img/s")
    for label, name, note in (("FixMatch / supervised", "fixmatch_over_supervised", ""),
                              ("DTA+SNL / FixMatch", "dta_snl_over_fixmatch", "; target <= 1.05")):
        lo, hi = ts[f"ratio_{name}_range"]
        print(f"  {label + ' step time:':32s} {ts[f'ratio_{name}']:.3f}  (min-max over rounds {lo:.3f}-{hi:.3f}{note})")
    print("views:", json.dumps(out["views"], indent=1))
    return 0
