"""How confident is a trained teacher on the faces it would pseudo-label?

For each finished run folder (one holding ``model.pt``), predicts the train split
of the run's own data set with its EMA teacher on the plain (weak, unmirrored)
view, the view the trainer pseudo-labels, and prints the mean top probability
and the share of faces above each threshold (FixMatch's is 0.95). The train
split stands in for the unlabeled set: it is that set plus the few labeled faces.

    python benchmarks/confidence_share.py RUN_DIR [RUN_DIR ...] [--root DATA_ROOT]

``--root`` replaces the ``data.root`` recorded in the run's config (another machine).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ssfer.evaluate import teacher_probs  # noqa: E402
from ssfer.record import RunRecord  # noqa: E402
from ssfer.train.data import load_split_data  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--root", default=None, help="the data set's folder on this machine")
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.9, 0.95])
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    for run_dir in args.runs:
        rec = RunRecord.load(run_dir)
        c = rec.config.with_overrides({"data.root": args.root}) if args.root else rec.config
        data = load_split_data(c, "train")  # as the trainer read it
        top = teacher_probs(rec, data.images, torch.device("cpu")).max(1)
        shares = ", ".join(f"> {t:g}: {100 * (top > t).mean():.1f} %" for t in args.thresholds)
        print(f"{run_dir}: {c.algo.name}, label smoothing {c.train.label_smoothing:g}, seed {c.train.seed}; "
              f"mean top probability {top.mean():.3f}; {shares}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
