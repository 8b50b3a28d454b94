"""``ssfer bench``: train-step throughput of supervised, FixMatch and DTA+SNL on
the same backbone and batch, in one process, plus the batched view pipeline
against a per-sample PIL reference (DESIGN §4).

A ratio of two step times is only as good as the conditions both were measured
under. Other load on the machine (a browser, a second job) comes and goes in
bursts: timing 20 steps of one algorithm, then 20 of the next, let one burst
land on one algorithm alone (a DTA+SNL / FixMatch ratio of 1.86 was seen with
2 threads and a browser running; 0.98–1.00 on a quiet machine with 1 thread).
So the algorithms take turns a step or a few at a time, over many rounds, in
an order that rotates each round; each round gives its own ratio, and the
report is their median with the min–max over rounds, which shows how steady
the machine was. One CPU thread by default: the measurement is then of the
work, not of how well the threads of three models share the cores.
"""
from __future__ import annotations

import json
import statistics
import time

import torch

from ssfer.config import Config
from ssfer.views import torch_threads

ALGOS = ("supervised", "fixmatch", "dta_snl")
RATIOS = {"fixmatch_over_supervised": ("fixmatch", "supervised"), "dta_snl_over_fixmatch": ("dta_snl", "fixmatch")}


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


def main(args) -> int:
    threads = getattr(args, "threads", 1)
    out = {"train_step": step_times(args.device, args.rounds, args.steps_per_round, args.batch_size, args.size,
                                    args.model, threads=threads)}
    try:
        from ssfer.views import bench_views

        dev = out["train_step"]["device"]
        out["views"] = bench_views(device=dev, size=args.size, channels=1, batch=256, seconds=2.0, threads=threads)
    except ImportError:  # pragma: no cover - views bench ships with ssfer.views
        pass
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
    if "views" in out:
        print("views:", json.dumps(out["views"], indent=1))
    return 0
