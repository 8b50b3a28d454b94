"""``ssfer pretrain``: BYOL pretraining of the backbone on the train split's
faces (no labels), or the cached result of it; in this process, or on a Dask
cluster's worker with ``--scheduler`` (``ssfer.book.engine``)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ssfer.book import engine
from ssfer.cli.options import add_run_flags


def add_cli(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("pretrain", help="self-supervised (BYOL) pretraining of the backbone on the train faces, "
                                        "for model.pretrained_path (or load its cached result)")
    add_run_flags(p, "pretrain", "a pretraining config: configs/*_pretrain*.yaml", "train.epochs=50")
    engine.add_flags(p, "the worker needs this project at this commit, the faces at data.root, and a run cache "
                        "(its $SSFER_CACHE, or --cache-dir) that the fine-tuning runs read too: the weights stay "
                        "there", unit="pretraining", instead="pretraining in this process")
    p.set_defaults(func=run_cli)
    return p


def run_cli(args: argparse.Namespace) -> int:
    from ssfer.config import parse_assignments
    from ssfer.pretrain.config import PretrainConfig
    from ssfer.pretrain.record import pretraining_code_digest
    from ssfer.pretrain.run import pretrain, run_dir_for

    cfg = PretrainConfig.from_yaml(args.config) if args.config else PretrainConfig.default()
    if args.set:
        cfg = cfg.with_overrides(parse_assignments(args.set))
    cache = str(args.cache_dir) if args.cache_dir else None
    if engine.scheduler_address(args.scheduler, args.scheduler_file) is None:
        print(f"run directory: {run_dir_for(cfg, args.cache_dir)}", file=sys.stderr)
        rec = pretrain(cfg, cache_dir=args.cache_dir, force=args.force, restart=args.restart)
        done, where = {"summary": rec.summary, "weights": str(rec.weights)}, ""
    else:
        task = engine.Task("pretraining", on_worker, (cfg, cache, args.force, args.restart, pretraining_code_digest()))
        try:
            with engine.Engine.open(1, args.scheduler, args.scheduler_file, args.retries) as runner:
                (out,) = list(runner.run([task], unit="pretraining"))
        except KeyboardInterrupt:
            print("ssfer: interrupted; the worker keeps its last checkpoint (one per epoch): the same command "
                  "resumes from it", file=sys.stderr)
            return 130
        if out.error:
            print(f"ssfer: pretraining failed: on {out.worker}: {out.error}", file=sys.stderr)
            return 1
        done, where = out.value, f" (on the worker {out.worker})"
        print(f"run directory{where}: {Path(done['weights']).parent}", file=sys.stderr)
    s = done["summary"]
    print(json.dumps({k: s[k] for k in ("probe_accuracy", "epochs", "seconds", "cpu_seconds")}
                     | {"weights": done["weights"] + where,
                        "fine_tune_with": f"--set model.pretrained_path={done['weights']}"}, indent=1))
    return 0


def on_worker(cfg, cache_dir: str | None, force: bool, restart: bool, code: str) -> dict:
    """One pretraining where the engine placed it, on a worker that runs the
    submitting checkout's code (``engine.check_worker``)."""
    from ssfer.pretrain.record import pretraining_code_digest
    from ssfer.pretrain.run import pretrain

    engine.check_worker(engine.here(), "pretrains", pretraining_code_digest(), code)
    rec = pretrain(cfg, cache_dir=Path(cache_dir) if cache_dir else None, force=force, restart=restart)
    return {"summary": rec.summary, "weights": str(rec.weights)}
