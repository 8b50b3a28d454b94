"""``ssfer labs release|grade``: hand out the course labs and grade what comes back."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _variant(text: str) -> int:
    n = int(text)
    if n < 0:
        raise argparse.ArgumentTypeError(f"{n}: expected 0 (the published labs) or a positive number")
    return n


def add_cli(sub) -> argparse.ArgumentParser:
    lab = sub.add_parser("labs", help="hand out the course labs and grade what comes back (nbgrader; book extra)")
    lsub = lab.add_subparsers(dest="labs_command", required=True)
    rel = lsub.add_parser("release", help="the handout (one folder per lab: the student notebook and a README) "
                                           "and, elsewhere, the instructor's course (solutions, gradebook)")
    rel.add_argument("out_dir", type=Path, help="the handout: what the students get")
    rel.add_argument("--instructor", type=Path, required=True, metavar="DIR",
                     help="the instructor's nbgrader course (solutions, hidden tests); never inside OUT_DIR")
    gr = lsub.add_parser("grade", help="autograde SUBMITTED_DIR/<student>/<lab>.ipynb, each in its own sandbox")
    gr.add_argument("submitted_dir", type=Path)
    gr.add_argument("--out", type=Path, default=Path("grades.csv"),
                    help="the CSV (one row per student and lab); feedback/, nbgrader/ and hand_grades.csv "
                         "are written next to it")
    gr.add_argument("--timeout", type=int, default=300, help="seconds per notebook (default 300)")
    gr.add_argument("--manual", type=Path, default=None, metavar="CSV",
                    help="hand grades (student,lab,cell,points) to merge in; kept for later runs")
    gr.add_argument("--no-sandbox", action="store_true",
                    help="grade without isolation where the sandbox cannot start (every row says so)")
    gr.add_argument("--memory", type=float, default=8.0, metavar="GIB",
                    help="address space of each process of a kernel, in GiB (default 8)")
    gr.add_argument("--processes", type=int, default=512, metavar="N",
                    help="processes and threads a kernel may start (default 512)")
    for q in (rel, gr):
        q.add_argument("--labs", type=Path, default=None, metavar="DIR",
                       help="the lab sources, or the instructor folder of a release "
                            "(default: this checkout's notebooks/labs)")
        q.add_argument("--variant", type=_variant, default=0, metavar="N",
                       help="ask the constants drawn from N (0: the published labs, the default)")
    lab.set_defaults(func=run_cli)
    return lab


def run_cli(args: argparse.Namespace) -> int:
    try:
        from ssfer.book.teaching import grading, sandbox

        if args.labs_command == "release":
            for path in grading.release(args.out_dir, args.instructor, args.labs, variant=args.variant):
                print(path)
            return 0
        limits = sandbox.Limits(memory_gib=args.memory, processes=args.processes)
        rows = grading.grade(args.submitted_dir, args.out, timeout=args.timeout, src_dir=args.labs,
                             variant=args.variant, manual_csv=args.manual, isolated=not args.no_sandbox,
                             limits=limits)
    except ImportError as e:
        print(f"ssfer: ssfer labs needs nbgrader, part of the book extra (pip install 'ssfer[book]'): {e}",
              file=sys.stderr)
        return 2
    except ValueError as e:  # GradingError, LabError, SandboxError, HandGradeError: a bad folder, source or option
        print(f"ssfer: {e}", file=sys.stderr)
        return 2
    print(f"{len(rows)} row(s) written to {args.out}")
    return 0
