"""A short FERPlus training run per algorithm at the `full` profile's scale, for
``device_check.sh``: seconds per step, GPU memory peak and test accuracy, as JSON.

    .venv/bin/python benchmarks/device_train.py --root /data/ferplus --out run.json
        [--steps 1000] [--algos supervised dta_snl] [--budget-s 120]

ResNet-18 at 112 px, bf16 autocast (on CUDA), channels_last, 64 labeled + mu·64
unlabeled faces per step, from ``configs/ferplus_fraction_10_dta_snl.yaml``
(10 % of FER2013Train labeled, 8 FERPlus classes). The loop is ``Trainer.fit``'s
(a host read of the losses every ``train.log_every`` steps), without its
evaluations on the way; the clock runs over the steps after ``--warmup-steps``,
and a run stops early, saying so, once it has used ``--budget-s``. The test
accuracy is the EMA teacher's on FER2013Test after the steps taken, with a
cosine schedule sized to them: a short run, not a result to quote as the
method's. ``--synthetic`` (for ``device_check.sh --dry-run`` only) trains on
SynthFER instead, and the JSON says so.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from ssfer.config import Config  # noqa: E402

CONFIG = REPO / "configs" / "ferplus_fraction_10_dta_snl.yaml"


def config_for(args, algo: str) -> Config:
    total = args.warmup_steps + args.steps
    ov = {"algo.name": algo, "model.name": args.model, "data.size": args.size, "train.batch_size": args.batch_size,
          "train.mu": args.mu, "train.steps": total, "train.device": args.device, "train.amp": True,
          "train.channels_last": True, "train.progress": False, "train.eval_every": 0, "train.log_every": 50,
          "train.ckpt_every": 0, "train.warmup_steps": max(1, total // 40)}  # the config's 500 of 20,000 steps
    if args.synthetic:
        ov.update({"data.dataset": "synthfer", "data.root": None, "data.options": {}, "data.n_train": 400,
                   "data.n_test": 80, "split.protocol": "per_class", "split.n_per_class": 4,
                   "train.log_every": 2})
    else:
        ov["data.root"] = str(args.root)
    return Config.from_yaml(CONFIG).with_overrides(ov)


def one_run(args, algo: str) -> dict:
    from ssfer.train.loop import Trainer

    cuda = torch.device(args.device).type == "cuda" if args.device != "auto" else torch.cuda.is_available()
    cfg = config_for(args, algo)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    tr = Trainer(cfg, run_dir=None)
    setup_s = time.perf_counter() - t0
    resident = torch.cuda.memory_allocated() if cuda else None  # data set, model, teacher, optimizer
    for _ in range(args.warmup_steps):
        tr.train_step()
    if cuda:
        torch.cuda.synchronize()
    log_every, done, stopped = cfg.train.log_every, 0, None
    t0 = time.perf_counter()
    while done < args.steps:
        tr.train_step()
        done += 1
        if tr.step % log_every == 0:
            tr.history.append(tr._log())  # the loop's host read at its cadence (and its NaN check)
            if time.perf_counter() - t0 > args.budget_s:
                stopped = f"stopped after {done} of {args.steps} timed steps: --budget-s {args.budget_s} used"
                break
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    test = tr.evaluate("test")
    eval_s = time.perf_counter() - t1
    return {
        "algorithm": algo, "device": str(tr.device), "model": cfg.model.name, "size": cfg.data.size,
        "channels": cfg.data.channels, "batch_labeled": cfg.train.batch_size,
        "batch_unlabeled": tr.batch_u if tr.use_unlabeled else 0, "amp_bf16": tr.amp,
        "channels_last": tr.channels_last, "n_labeled": len(tr.data.labeled), "n_unlabeled": len(tr.data.unlabeled),
        "warmup_steps_untimed": args.warmup_steps, "timed_steps": done, "stopped_early": stopped,
        "seconds_per_step": seconds / max(done, 1), "timed_seconds": seconds,
        "setup_seconds": setup_s, "eval_seconds": eval_s,
        "gpu_memory_resident_bytes": resident,
        "gpu_memory_peak_bytes": torch.cuda.max_memory_allocated() if cuda else None,
        "test_accuracy": test["accuracy"], "test_mean_class_accuracy": test["mean_class_accuracy"],
        "last_logged_loss": tr.history[-1]["loss"] if tr.history else None,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, help="FERPlus folder (holding data/FER2013Train/ and fer2013new.csv)")
    ap.add_argument("--synthetic", action="store_true", help="SynthFER instead of FERPlus (dry runs only)")
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--algos", nargs="+", default=["supervised", "dta_snl"])
    ap.add_argument("--steps", type=int, default=1000, help="timed steps per run")
    ap.add_argument("--warmup-steps", type=int, default=20, help="untimed steps first (kernel choice, lazy set-up)")
    ap.add_argument("--budget-s", type=float, default=120.0, help="stop a run's timed steps after this many seconds")
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--mu", type=int, default=3)
    args = ap.parse_args()
    if args.synthetic == (args.root is not None):
        ap.error("give exactly one of --root PATH (FERPlus) and --synthetic")
    if args.root is not None and not (args.root / "data" / "FER2013Train").is_dir():
        ap.error(f"--root {args.root}: no data/FER2013Train/ there (expected the FERPlus folder)")
    out = {"data": "SynthFER (dry run: not FERPlus; the figures say nothing about FERPlus)" if args.synthetic
           else f"FERPlus at {args.root}", "config": str(CONFIG.relative_to(REPO)), "torch": torch.__version__,
           "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None, "runs": {}, "errors": {}}
    for algo in args.algos:
        try:
            out["runs"][algo] = one_run(args, algo)
        except Exception as e:  # noqa: BLE001 - one failed run must not lose the other's figures
            out["errors"][algo] = "".join(traceback.format_exception_only(type(e), e)).strip()
            traceback.print_exc()
        args.out.write_text(json.dumps(out, indent=1))  # after every run: a later crash keeps the earlier
        print(json.dumps({algo: out["runs"].get(algo) or out["errors"].get(algo)}, indent=1), flush=True)
    return 1 if out["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
