"""``ssfer train``: train one configuration, or load its cached run."""
from __future__ import annotations

import argparse
import json
import sys

from ssfer.cli.options import add_run_flags


def add_cli(sub) -> argparse.ArgumentParser:
    t = sub.add_parser("train", help="train one configuration (or load its cached run)")
    add_run_flags(t, "train", "see configs/", "train.steps=100")
    t.set_defaults(func=run_cli)
    return t


def run_cli(args: argparse.Namespace) -> int:
    from ssfer.config import Config, parse_assignments
    from ssfer.train import run, run_dir_for
    from ssfer.train.distributed import is_main

    cfg = Config.from_yaml(args.config) if args.config else Config.default()
    if args.set:
        cfg = cfg.with_overrides(parse_assignments(args.set))
    print(f"run directory: {run_dir_for(cfg, args.cache_dir)}", file=sys.stderr)
    rec = run(cfg, cache_dir=args.cache_dir, force=args.force, restart=args.restart)
    if not is_main():  # under torchrun, one summary is enough
        return 0
    s = rec.summary
    print(json.dumps({k: s[k] for k in ("algorithm", "accuracy", "mean_class_accuracy", "macro_f1", "ece")}
                     | {"run_dir": str(rec.run_dir)}, indent=1))
    return 0
