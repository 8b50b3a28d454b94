"""Where a train step's time goes: ``torch.profiler`` over real ``Trainer.train_step``
calls, split into the step's parts (views, student forward, teacher forward,
losses, backward, clipping, optimizer, EMA, thresholds, ...) and, within them,
the heaviest operators; with the step's FLOPs, the convolutions' own rate.

    .venv/bin/python benchmarks/profile_step.py [--config configs/ferplus_fraction_10_cpu.yaml]
        [--algo supervised] [--steps 10] [--threads 1] [--device cpu]

The parts are marked by wrapping the trainer's pieces from outside (training
code is not edited for it); what no part claims is "rest of the step".
Profiling slows every operator call a little: read the shares, not the times.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ssfer.bench import bench_config, matmul_peak, step_flops, torch_threads  # noqa: E402

PREFIX = "part: "
CONV_OPS = ("aten::mkldnn_convolution", "aten::convolution_backward", "aten::cudnn_convolution",
            "aten::_convolution", "aten::convolution")


def marked(name: str, fn):
    @functools.wraps(fn)
    def run(*a, **k):
        with record_function(PREFIX + name):
            return fn(*a, **k)
    return run


@contextlib.contextmanager
def parts_marked(tr):
    """Mark the step's parts; undo the module-level patches afterwards."""
    import ssfer.train.loop as loop

    tr.views.weak = marked("views (weak)", tr.views.weak)
    tr.views.strong = marked("views (strong)", tr.views.strong)
    tr.forward = marked("student forward", tr.forward)
    tr.ema.module.forward = marked("teacher forward", tr.ema.module.forward)
    tr.ema.update = marked("EMA update", tr.ema.update)
    tr.optimizer.step = marked("optimizer step", tr.optimizer.step)  # keeps the scheduler's step counter
    tr._labeled_batch = marked("sampling", tr._labeled_batch)
    tr._unlabeled_positions = marked("sampling", tr._unlabeled_positions)
    tr.diag.update = marked("diagnostics", tr.diag.update)
    tr.negatives.select = marked("negatives", tr.negatives.select)
    if tr.threshold is not None:
        tr.threshold.update = marked("threshold", tr.threshold.update)
        tr.threshold.mask = marked("threshold", tr.threshold.mask)
    saved = {}
    for name in ("supervised_loss", "positive_loss", "negative_loss"):
        saved[(loop, name)] = getattr(loop, name)
        setattr(loop, name, marked("losses", getattr(loop, name)))
    saved[(torch.nn.utils, "clip_grad_norm_")] = torch.nn.utils.clip_grad_norm_
    torch.nn.utils.clip_grad_norm_ = marked("grad clipping", torch.nn.utils.clip_grad_norm_)
    saved[(torch.Tensor, "backward")] = torch.Tensor.backward
    torch.Tensor.backward = marked("backward", torch.Tensor.backward)
    try:
        yield
    finally:
        for (owner, name), fn in saved.items():
            setattr(owner, name, fn)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/ferplus_fraction_10_cpu.yaml")
    ap.add_argument("--algo", default="supervised")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args()
    from ssfer.train.loop import Trainer

    with torch_threads(args.threads):
        tr = Trainer(bench_config(args.algo, args.device, config=args.config), run_dir=None)
        for _ in range(3):
            tr.train_step()
        flops = step_flops(tr)
        t0 = time.perf_counter()
        for _ in range(args.steps):
            tr.train_step()
        plain = (time.perf_counter() - t0) / args.steps
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if tr.device.type == "cuda" else [])
        with parts_marked(tr), profile(activities=activities) as prof:
            for _ in range(args.steps):
                with record_function("step"):
                    tr.train_step()
            if tr.device.type == "cuda":
                torch.cuda.synchronize()
        peak = matmul_peak(tr.device, torch.float32, seconds=2.0)
        threads = torch.get_num_threads() if tr.device.type == "cpu" else "-"
    ev = {e.key: e for e in prof.key_averages()}
    step_us = ev["step"].cpu_time_total / args.steps
    print(f"{args.algo} on {tr.device}, {threads} thread(s), "
          f"{tr.cfg.model.name} at {tr.cfg.data.size} px, batch {tr.cfg.train.batch_size}"
          f" (+{tr.batch_u if tr.use_unlabeled else 0} unlabeled), config {args.config}")
    print(f"step: {1e3 * plain:.1f} ms unprofiled, {step_us / 1e3:.1f} ms profiled; {flops / 1e9:.2f} GFLOP/step "
          f"-> {flops / plain / 1e9:.1f} GFLOP/s = {100 * flops / plain / 1e9 / peak['gflops']:.1f} % of "
          f"{peak['gflops']:.1f} GFLOP/s ({peak['how']})")
    print("parts (CPU time incl. children, share of the profiled step):")
    parts = sorted((e for k, e in ev.items() if k.startswith(PREFIX)), key=lambda e: -e.cpu_time_total)
    claimed = 0.0
    for e in parts:
        t = e.cpu_time_total / args.steps
        claimed += t
        print(f"  {e.key[len(PREFIX):]:18s} {t / 1e3:8.2f} ms  {100 * t / step_us:5.1f} %")
    print(f"  {'rest of the step':18s} {(step_us - claimed) / 1e3:8.2f} ms  {100 * (step_us - claimed) / step_us:5.1f} %")
    conv_us = sum(ev[k].self_cpu_time_total for k in CONV_OPS if k in ev) / args.steps
    print(f"convolutions (self time of {', '.join(k for k in CONV_OPS if k in ev)}): {conv_us / 1e3:.2f} ms/step, "
          f"{100 * conv_us / step_us:.1f} % of the step; the step's FLOPs in that time: "
          f"{flops / (conv_us * 1e-6) / 1e9:.1f} GFLOP/s")
    print(f"top {args.top} operators by self CPU time per step:")
    ops = sorted((e for k, e in ev.items() if k.startswith("aten::")), key=lambda e: -e.self_cpu_time_total)
    for e in ops[:args.top]:
        t = e.self_cpu_time_total / args.steps
        print(f"  {e.key:40s} {t / 1e3:8.2f} ms  {100 * t / step_us:5.1f} %  {e.count // args.steps:5d} calls/step")


if __name__ == "__main__":
    main()
