"""``ssfer bench``: train-step throughput of supervised, FixMatch and DTA+SNL on
the same backbone and batch, in one process, plus the batched view pipeline
against a per-sample PIL reference (DESIGN §4).

Steps of the three algorithms are interleaved in rounds so that a machine's
drift (other load, clocks) spreads over all of them alike.
"""
from __future__ import annotations

import json
import statistics
import time

import torch

from ssfer.config import Config

ALGOS = ("supervised", "fixmatch", "dta_snl")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_times(device: str = "auto", steps: int = 20, batch_size: int = 32, size: int = 48,
               model: str = "resnet18", rounds: int = 4, warmup: int = 3) -> dict:
    from ssfer.train.loop import Trainer

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
    per_round = max(1, steps // rounds)
    for _ in range(rounds):
        for algo, tr in trainers.items():
            _sync(dev)
            t0 = time.perf_counter()
            for _ in range(per_round):
                tr.train_step()
            _sync(dev)
            times[algo].append((time.perf_counter() - t0) / per_round)
    med = {a: statistics.median(v) for a, v in times.items()}
    images = batch_size * (1 + trainers["fixmatch"].cfg.train.mu)
    return {
        "device": str(dev), "model": model, "size": size, "batch_labeled": batch_size,
        "batch_unlabeled": batch_size * trainers["fixmatch"].cfg.train.mu,
        "step_seconds": med,
        "images_per_second": {a: (batch_size if a == "supervised" else images) / s for a, s in med.items()},
        "ratio_fixmatch_over_supervised": med["fixmatch"] / med["supervised"],
        "ratio_dta_snl_over_fixmatch": med["dta_snl"] / med["fixmatch"],
    }


def main(args) -> int:
    out = {"train_step": step_times(args.device, args.steps, args.batch_size, args.size, args.model)}
    try:
        from ssfer.views import bench_views

        dev = out["train_step"]["device"]
        out["views"] = bench_views(device=dev, size=args.size, channels=1, batch=256, seconds=2.0)
    except ImportError:  # pragma: no cover - views bench ships with ssfer.views
        pass
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    ts = out["train_step"]
    print(f"train step on {ts['device']}: {ts['model']} at {ts['size']} px, "
          f"{ts['batch_labeled']} labeled + {ts['batch_unlabeled']} unlabeled per step")
    for a in ALGOS:
        print(f"  {a:11s} {1000 * ts['step_seconds'][a]:8.1f} ms/step  {ts['images_per_second'][a]:8.1f} img/s")
    print(f"  FixMatch / supervised step time: {ts['ratio_fixmatch_over_supervised']:.3f}")
    print(f"  DTA+SNL / FixMatch step time:    {ts['ratio_dta_snl_over_fixmatch']:.3f}  (target <= 1.05)")
    if "views" in out:
        print("views:", json.dumps(out["views"], indent=1))
    return 0
