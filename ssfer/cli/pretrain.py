"""``ssfer pretrain``: BYOL pretraining of the backbone on the train split's
faces (no labels), or the cached result of it."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_cli(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("pretrain", help="self-supervised (BYOL) pretraining of the backbone on the train faces, "
                                        "for model.pretrained_path (or load its cached result)")
    p.add_argument("--config", type=Path, help="YAML pretraining config (configs/*_pretrain*.yaml); defaults otherwise")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override, e.g. train.epochs=50 (VALUE read as YAML)")
    p.add_argument("--cache-dir", type=Path, default=None, help="run cache (default $SSFER_CACHE or ~/.cache/ssfer)")
    p.add_argument("--force", action="store_true", help="pretrain even when a cached result exists")
    p.add_argument("--restart", action="store_true",
                   help="discard an interrupted run's checkpoint (e.g. a corrupt one) and start over")
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
