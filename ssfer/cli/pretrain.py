"""``ssfer pretrain``: BYOL pretraining of the backbone on the train split's
faces (no labels), or the cached result of it."""
from __future__ import annotations

import argparse
import json
import sys

from ssfer.cli.options import add_run_flags


def add_cli(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("pretrain", help="self-supervised (BYOL) pretraining of the backbone on the train faces, "
                                        "for model.pretrained_path (or load its cached result)")
    add_run_flags(p, "pretrain", "a pretraining config: configs/*_pretrain*.yaml", "train.epochs=50")
    p.set_defaults(func=run_cli)
    return p


def run_cli(args: argparse.Namespace) -> int:
    from ssfer.config import parse_assignments
    from ssfer.pretrain.config import PretrainConfig
    from ssfer.pretrain.run import pretrain, run_dir_for

    cfg = PretrainConfig.from_yaml(args.config) if args.config else PretrainConfig.default()
    if args.set:
        cfg = cfg.with_overrides(parse_assignments(args.set))
    print(f"run directory: {run_dir_for(cfg, args.cache_dir)}", file=sys.stderr)
    rec = pretrain(cfg, cache_dir=args.cache_dir, force=args.force, restart=args.restart)
    s = rec.summary
    print(json.dumps({k: s[k] for k in ("probe_accuracy", "epochs", "seconds", "cpu_seconds")}
                     | {"weights": str(rec.weights), "fine_tune_with": f"--set model.pretrained_path={rec.weights}"},
                     indent=1))
    return 0
