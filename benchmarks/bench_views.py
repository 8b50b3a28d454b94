"""Throughput of ssfer.views (batched weak/strong views) against a per-sample
PIL pipeline (torchvision.transforms.v2 on PIL images, one process), the
pattern of the public SSL codebases' loader workers.

    .venv/bin/python benchmarks/bench_views.py [--seconds 2] [--batch 256]

``ssfer.bench.bench_views(device, size, channels, batch, seconds)`` returns
the figures as a dict (``ssfer bench`` calls it). Images are uniform noise:
the ops' cost does not depend on content.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# the measurement lives in the library, where `ssfer bench` calls it
from ssfer.bench import BENCH_RANDAUG_N, bench_views, pil_reference, torch_threads  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--no-cpu", action="store_true", help="CUDA rows only (with the PIL reference)")
    args = ap.parse_args()
    devices = ([] if args.no_cpu else [("cpu", 1), ("cpu", 2)])
    if torch.cuda.is_available():
        devices.append(("cuda", None))
    print(f"torch {torch.__version__}; PIL reference: torchvision.transforms.v2 per image, 1 thread; "
          f"RandAugment n={BENCH_RANDAUG_N}; batch {args.batch}")
    print(f"{'device':>7} {'thr':>3} {'size':>4} {'C':>1} | {'weak':>8} {'PIL weak':>8} {'ratio':>6} | "
          f"{'strong':>8} {'PIL strg':>8} {'ratio':>6}   (img/s)")
    for size, channels in ((48, 1), (112, 3)):
        with torch_threads(1):
            ref = pil_reference(size, channels, args.batch, args.seconds)
        for device, threads in devices:
            r = bench_views(device, size, channels, args.batch, args.seconds, threads, reference=False)
            print(f"{device:>7} {threads or '-':>3} {size:>4} {channels:>1} | {r['weak_img_s']:8.0f} "
                  f"{ref['pil_weak_img_s']:8.0f} {r['weak_img_s'] / ref['pil_weak_img_s']:6.1f} | "
                  f"{r['strong_img_s']:8.0f} {ref['pil_strong_img_s']:8.0f} "
                  f"{r['strong_img_s'] / ref['pil_strong_img_s']:6.1f}", flush=True)


if __name__ == "__main__":
    main()
