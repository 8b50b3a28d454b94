"""The per-parameter work of a CPU train step, as the trainer does it and as it
could: the optimizer step (AdamW, as built by ``Trainer._optimizer``: no
``fused``/``foreach`` on the CPU), gradient clipping and the EMA update
(timm's ``ModelEmaV3``, which walks both models' ``state_dict()`` each step).

    .venv/bin/python benchmarks/bench_step_overhead.py [--config configs/ferplus_fraction_10_cpu.yaml]
        [--rounds 30] [--threads 1]

Each variant runs in turn, once per round, over the same model's parameters
with gradients set; the report is each one's median milliseconds. This measures
candidates for ``ssfer/train/loop.py``; it changes nothing there. The
alternatives update the same values (fused/foreach AdamW to rounding; the EMA
lerp over cached tensor lists exactly as timm's foreach path does).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ssfer.bench import bench_config, torch_threads  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/ferplus_fraction_10_cpu.yaml")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    from ssfer.train.loop import Trainer

    with torch_threads(args.threads):
        tr = Trainer(bench_config("supervised", "cpu", config=args.config), run_dir=None)
        tr.train_step()  # gradients and optimizer state exist
        params = [p for p in tr.student.parameters()]
        t = tr.cfg.train

        def adamw(**kw):
            opt = torch.optim.AdamW([{"params": [p for p in params if p.ndim > 1], "weight_decay": t.weight_decay},
                                     {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}],
                                    lr=t.lr, **kw)
            opt.step()  # state
            return opt.step

        ema_values = [v for v in tr.ema.module.state_dict().values() if v.is_floating_point()]
        model_values = [v for v in tr.student.state_dict().values() if v.is_floating_point()]
        variants = {
            "AdamW as built (CPU: per-tensor loop)": tr.optimizer.step,
            "AdamW foreach=True": adamw(foreach=True),
            "AdamW fused=True": adamw(fused=True),
            "clip_grad_norm_ as called": lambda: torch.nn.utils.clip_grad_norm_(tr.student.parameters(), t.clip_grad),
            "clip_grad_norm_ foreach=True": lambda: torch.nn.utils.clip_grad_norm_(params, t.clip_grad, foreach=True),
            "ModelEmaV3.update (state_dict walk)": lambda: tr.ema.update(tr.student, step=tr.step),
            "one _foreach_lerp_ on cached lists": lambda: torch._foreach_lerp_(ema_values, model_values, 0.001),
        }
        times = {k: [] for k in variants}
        for _ in range(args.rounds):
            for name, fn in variants.items():
                t0 = time.perf_counter()
                with torch.no_grad():
                    fn()
                times[name].append(time.perf_counter() - t0)
        threads = torch.get_num_threads()
    print(f"{len(params)} parameter tensors ({sum(p.numel() for p in params) / 1e6:.2f} M values) of "
          f"{tr.cfg.model.name} ({args.config}); {threads} thread(s); median of {args.rounds} interleaved rounds")
    for name, v in times.items():
        print(f"  {name:40s} {1e3 * statistics.median(v):7.2f} ms")


if __name__ == "__main__":
    main()
