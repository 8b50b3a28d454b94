"""``ssfer data check``: count a data set's samples and report its problems."""
from __future__ import annotations

import argparse
import json
import sys

from ssfer.cli.options import key_value, loader_options


def add_cli(sub) -> argparse.ArgumentParser:
    from ssfer.data.check import FLAT_STD
    from ssfer.data.registry import FORMATS

    data = sub.add_parser("data", help="data set tools")
    dsub = data.add_subparsers(dest="data_command", required=True)
    p = dsub.add_parser(
        "check", help="count a data set's samples and report its problems",
        description="Count a data set's samples per split and class, and report missing, unreadable, "
                    "blank and duplicate images and malformed label rows. Exit 0 with only warnings, "
                    "1 with errors.")
    p.add_argument("name", help="data set: " + ", ".join(FORMATS))
    p.add_argument("root", help="folder the data set was unpacked to")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--split", action="append", dest="splits", metavar="SPLIT",
                   help="check only this split (repeatable); default: all")
    p.add_argument("-o", "--option", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                   help="loader option, e.g. -o labels=label.csv (ferplus), -o num_classes=8 (affectnet)")
    p.add_argument("--no-images", dest="images", action="store_false",
                   help="counts and label rows only: open no image (no blank/duplicate search)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--flat-std", type=float, default=FLAT_STD, help="std below which an image is flat")
    p.add_argument("--max-problems", type=int, default=20, help="errors listed in the text report")
    p.set_defaults(func=run_check)
    return data


def run_check(args: argparse.Namespace) -> int:
    from ssfer.data.check import check_dataset, format_report
    from ssfer.data.errors import DataError

    try:
        report = check_dataset(args.name, args.root, splits=args.splits, workers=args.workers,
                               flat_std=args.flat_std, images=args.images,
                               **loader_options(args.name, args.option))
    except DataError as e:  # exit 2, not 1: nothing could be checked (1 says the data have errors)
        print(f"ssfer: {e.kind}: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=1) if args.json else format_report(report, args.max_problems))
    return 0 if report["ok"] else 1
