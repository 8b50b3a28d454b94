"""``ssfer labs release|grade``: hand out the course labs and grade what comes back."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_cli(sub) -> argparse.ArgumentParser:
    lab = sub.add_parser("labs", help="hand out the course labs and grade what comes back (nbgrader; book extra)")
    lsub = lab.add_subparsers(dest="labs_command", required=True)
    rel = lsub.add_parser("release", help="one folder per lab: the student notebook and a README; "
                                           "OUT_DIR/instructor: solutions and nbgrader's gradebook")
    rel.add_argument("out_dir", type=Path)
    gr = lsub.add_parser("grade", help="autograde SUBMITTED_DIR/<student>/<lab>.ipynb in fresh kernels")
    gr.add_argument("submitted_dir", type=Path)
    gr.add_argument("--out", type=Path, default=Path("grades.csv"),
                    help="the CSV (one row per student and lab); feedback/ and nbgrader/ are written next to it")
    gr.add_argument("--timeout", type=int, default=300, help="seconds per notebook (default 300)")
    for q in (rel, gr):
        q.add_argument("--labs", type=Path, default=None, metavar="DIR",
                       help="the lab sources (default: this checkout's notebooks/labs)")
    lab.set_defaults(func=run_cli)
    return lab


def run_cli(args: argparse.Namespace) -> int:
    try:
        from ssfer.book.teaching import grading

        if args.labs_command == "release":
            for path in grading.release(args.out_dir, args.labs):
                print(path)
            return 0
        rows = grading.grade(args.submitted_dir, args.out, timeout=args.timeout, src_dir=args.labs)
    except ImportError as e:
        print(f"ssfer: ssfer labs needs nbgrader, part of the book extra (pip install 'ssfer[book]'): {e}",
              file=sys.stderr)
        return 2
    except ValueError as e:  # GradingError, LabError: a bad folder, source or option
        print(f"ssfer: {e}", file=sys.stderr)
        return 2
    print(f"{len(rows)} row(s) written to {args.out}")
    return 0
