"""``ssfer train``: train one configuration, or load its cached run."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_cli(sub) -> argparse.ArgumentParser:
    t = sub.add_parser("train", help="train one configuration (or load its cached run)")
    t.add_argument("--config", type=Path, help="YAML config (see configs/); defaults otherwise")
    t.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override, e.g. train.steps=100 (VALUE read as YAML)")
    t.add_argument("--cache-dir", type=Path, default=None, help="run cache (default $SSFER_CACHE or ~/.cache/ssfer)")
    t.add_argument("--force", action="store_true", help="train even when a cached run exists")
    t.add_argument("--restart", action="store_true",
                   help="discard an interrupted run's checkpoint (e.g. a corrupt one) and train from the start")
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
