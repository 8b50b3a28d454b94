"""``ssfer eval``: a finished run's teacher on any data set, through the canonical classes."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ssfer.cli.options import key_value, loader_options


def add_cli(sub) -> argparse.ArgumentParser:
    e = sub.add_parser("eval", help="evaluate a finished run on a data set (cross-dataset via canonical classes)")
    e.add_argument("run", type=Path, help="run directory")
    e.add_argument("--dataset", required=True)
    e.add_argument("--root", type=Path, default=None)
    e.add_argument("--split", default="test")
    e.add_argument("--option", action="append", type=key_value, metavar="KEY=VALUE",
                   help="loader option, checked against the loader (e.g. crop=false, num_classes=8)")
    e.set_defaults(func=run_cli)
    return e


def run_cli(args: argparse.Namespace) -> int:
    from ssfer.evaluate import evaluate_run

    options = loader_options(args.dataset, args.option)
    print(json.dumps(evaluate_run(args.run, args.dataset, args.root, split=args.split, options=options), indent=1))
    return 0
