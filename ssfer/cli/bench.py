"""``ssfer bench``: train-step and data-pipeline throughput."""
from __future__ import annotations

import argparse


def add_cli(sub) -> argparse.ArgumentParser:
    b = sub.add_parser("bench", help="train-step and data-pipeline throughput")
    b.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    b.add_argument("--rounds", type=int, default=30, help="rounds in which every algorithm takes its turn")
    b.add_argument("--steps-per-round", type=int, default=1, help="steps of one algorithm per turn")
    b.add_argument("--threads", type=int, default=1, help="torch CPU threads while measuring (default 1)")
    b.add_argument("--config", default=None,
                   help="training config whose network and step shape to time (data stay SynthFER)")
    b.add_argument("--batch-size", type=int, default=None, help="labeled per step (default 32, or the config's)")
    b.add_argument("--size", type=int, default=None, help="image side (default 48, or the config's)")
    b.add_argument("--model", default=None, help="timm name (default resnet18, or the config's)")
    b.add_argument("--no-flops", action="store_true", help="skip the FLOP count and the matmul peak")
    b.add_argument("--views-seconds", type=float, default=2.0, help="seconds per view measurement (default 2)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=run_cli)
    return b


def run_cli(args: argparse.Namespace) -> int:
    from ssfer.bench import main as bench_main

    return bench_main(args)
