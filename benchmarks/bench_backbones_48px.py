"""Which network for 48-pixel faces on one CPU core? Step cost of the candidates.

For each candidate body (a timm ResNet, built through ``ssfer.model.build_model``
with the book's attention and DropBlock), prints the last feature map at 48 px,
the parameter count and the milliseconds of one forward + backward pass over a
batch of 32 grey faces in training mode, on one thread, channels_last (best of
``--repeats`` timings: other load only ever slows a run). Accuracy comes from
real training runs; ``benchmarks/backbones_48px.md`` lists them with their commands.

    python benchmarks/bench_backbones_48px.py [--repeats 3] [--steps 8]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ssfer.model import build_model  # noqa: E402

R10 = {"channels": (16, 32, 64, 128), "stem_width": 8}
CANDIDATES = {
    "test_resnet, ImageNet stem": ("test_resnet", "imagenet", {}),
    "test_resnet, small stem": ("test_resnet", "small", {}),
    "resnet10t 8-64, small stem": ("resnet10t", "small", {"channels": (8, 16, 32, 64), "stem_width": 4}),
    "resnet10t 16-128, small stem": ("resnet10t", "small", R10),
    "resnet10t 16-128, small_pool stem, os16": ("resnet10t", "small_pool", {**R10, "output_stride": 16}),
    "resnet10t 24-192, small_pool stem, os16": ("resnet10t", "small_pool",
                                                {"channels": (24, 48, 96, 192), "stem_width": 12,
                                                 "output_stride": 16}),
    "resnet18 16-128, small stem": ("resnet18", "small", {"channels": (16, 32, 64, 128)}),
}


def step_ms(model: torch.nn.Module, steps: int, repeats: int) -> float:
    x = torch.randn(32, 1, 48, 48).contiguous(memory_format=torch.channels_last)
    model = model.train().to(memory_format=torch.channels_last)
    for _ in range(3):
        model(x).sum().backward()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(steps):
            model(x).sum().backward()
        best = min(best, (time.perf_counter() - t) / steps)
    return 1000 * best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"forward + backward, batch 32, 48x48 grey, 1 thread, torch {torch.__version__}")
    print(f"{'candidate':44s} {'last map':>10s} {'params':>9s} {'ms/batch':>9s}")
    for label, (name, stem, kw) in CANDIDATES.items():
        torch.manual_seed(0)
        model = build_model(name, num_classes=8, stem=stem, **kw)
        with torch.no_grad():
            fmap = model.eval().body_map(torch.zeros(1, 1, 48, 48))
        n = sum(p.numel() for p in model.parameters())
        print(f"{label:44s} {f'{fmap.shape[2]}x{fmap.shape[3]}':>10s} {n:>9,d} "
              f"{step_ms(model, args.steps, args.repeats):>9.1f}", flush=True)


if __name__ == "__main__":
    main()
