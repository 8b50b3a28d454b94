"""The ``ssfer`` command: train, eval, data check, bench, reproduce."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _train(args: argparse.Namespace) -> int:
    from ssfer.config import Config
    from ssfer.train import run, run_dir_for

    cfg = Config.from_yaml(args.config) if args.config else Config.default()
    if args.set:
        cfg = cfg.with_overrides(args.set)
    print(f"run directory: {run_dir_for(cfg, args.cache_dir)}", file=sys.stderr)
    rec = run(cfg, cache_dir=args.cache_dir, force=args.force, restart=args.restart)
    from ssfer.train.distributed import is_main

    if not is_main():  # under torchrun, one summary is enough
        return 0
    s = rec.summary
    print(json.dumps({k: s[k] for k in ("algorithm", "accuracy", "mean_class_accuracy", "macro_f1", "ece")}
                     | {"run_dir": str(rec.run_dir)}, indent=1))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from ssfer.evaluate import evaluate_run

    out = evaluate_run(args.run, args.dataset, args.root, split=args.split, options=dict(args.option or []))
    print(json.dumps(out, indent=1))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from ssfer.bench import main as bench_main

    return bench_main(args)


def _print_open_seeds(seeds: list[dict]) -> None:
    """Which part-recorded seeds this machine would complete on their own CPU kind and code."""
    if not seeds:
        return
    from ssfer.record import this_cpu_kind, training_code_digest

    here, code = this_cpu_kind(), training_code_digest()[:8]
    print(f"part-recorded seeds (this machine: {here}; training code {code}):")
    for s in seeds:
        mixes = [what for what, theirs, ours in (("CPU kinds", s["kinds"], here), ("code versions", s["codes"], code))
                 if theirs != [ours]]
        of = f" of {s['variant']!r}" if s["variant"] else ""
        n = len(s["recorded"]) + len(s["left"])
        kinds = "; ".join("a CPU kind not recorded" if k == "not recorded" else k for k in s["kinds"])
        print(f"  seed {s['seed']}{of}: {len(s['recorded'])} of {n} runs recorded on {kinds}, "
              f"code {', '.join(s['codes'])} (commit {', '.join(s['commits'])}); "
              + (f"completing it here mixes {' and '.join(mixes)}" if mixes else "this machine completes it alike"))


def _results(args: argparse.Namespace) -> int:
    from ssfer import results

    root = Path.cwd()
    grid = results.load_grid(args.grid)
    todo = results.pending(grid, args.results_dir, args.only, args.variant, args.seed_major)
    if args.results_command == "status":
        done = [p.name for p in grid if results.is_recorded(args.results_dir, p.name)]
        print(f"{len(done)} of {len(grid)} runs of {args.grid} recorded in {args.results_dir}/")
        for p in todo:
            print(f"  to record: {p.name}")
        _print_open_seeds(results.open_seeds(grid, args.results_dir, args.variant))
        return 0
    if args.results_command == "family":
        from ssfer import findings

        print(findings.family_report(findings.load(args.results_dir, args.grid), args.metric))
        return 0
    if args.results_command == "plan":
        from ssfer import report

        table = results.results_table(results.load_results(args.results_dir), grid)
        frame = results.plan(table, args.halfwidth, **results.PRIMARY)
        total = results.plan_total(table, frame, **results.PRIMARY)
        print(f"planned comparisons on {results.PRIMARY_NAME}; target 95 % half-width {report.amount(args.halfwidth)} "
              f"(test accuracy), at most {results.MAX_SEEDS} seeds:")
        print(frame.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
        print(f"the family: {total['complete seeds']} seeds recorded for every method; {total['seeds needed']} "
              f"needed; {total['runs to record']} runs to record, about {total['CPU hours']:.1f} CPU hours "
              "(mean recorded train_seconds per run"
              + (f"; {', '.join(total['not timed'])} not counted: no run recorded yet)" if total["not timed"] else ")"))
        return 0
    roots = dict(args.root or [])
    if args.results_command == "replay":
        runs = args.runs or []
        if not runs:
            print("ssfer: results replay: name the recorded runs to replay "
                  "(folders of --results-dir, or their paths)", file=sys.stderr)
            return 2
        same = True
        for name in runs:
            # a run's name in --results-dir, or the path of a run folder (as the shell completes it)
            given = Path(name)
            run_dir = given if (given / "summary.json").is_file() else args.results_dir / name
            out = results.replay(run_dir, roots, args.steps)
            if args.log:
                results.log_replay(args.results_dir, out)
            same &= out["identical"]
            verdict = "identical" if out["identical"] else f"differs first at {out['first_difference']}"
            print(f"{name}: {out['rows']} logged rows of the first {out['steps']} steps: {verdict}", flush=True)
        return 0 if same else 1
    _print_open_seeds([s for s in results.open_seeds(grid, args.results_dir, args.variant)
                       if {p.name for p in todo} & set(s["left"])])
    out = results.record_grid(grid, root, args.results_dir, roots, jobs=args.jobs, only=args.only,
                              cache_dir=str(args.cache_dir) if args.cache_dir else None, variant=args.variant,
                              seed_major=args.seed_major)
    failed = {k: v for k, v in out.items() if v}
    for name, err in failed.items():
        print(f"ssfer: run {name} failed: {err}", file=sys.stderr)
    return 1 if failed else 0


def _labs(args: argparse.Namespace) -> int:
    try:
        from ssfer import grading

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


TOOLING, TOOLING_HELP = "reproduce", "re-run the book's notebooks with a profile and build it (needs the book extra)"
DEBUG_HELP = "show the traceback of expected errors (config, data, checkpoint, loss, run folder) too"


def _kv(s: str) -> tuple[str, str]:
    if "=" not in s:
        raise argparse.ArgumentTypeError(f"expected key=value, got {s!r}")
    k, v = s.split("=", 1)
    return k, v


def build_parser(tooling: bool = False) -> argparse.ArgumentParser:
    """The ``ssfer`` parser. The notebook tooling's command is listed, but its
    arguments come from ``ssfer.reproduce``, which needs the book extra
    (nbformat, papermill): they are added only with ``tooling``, which ``main``
    asks for when that command is given, so that a base install trains."""
    p = argparse.ArgumentParser(prog="ssfer", description=__doc__)
    p.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train one configuration (or load its cached run)")
    t.add_argument("--config", type=Path, help="YAML config (see configs/); defaults otherwise")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, e.g. train.steps=100")
    t.add_argument("--cache-dir", type=Path, default=None, help="run cache (default $SSFER_CACHE or ~/.cache/ssfer)")
    t.add_argument("--force", action="store_true", help="train even when a cached run exists")
    t.add_argument("--restart", action="store_true",
                   help="discard an interrupted run's checkpoint (e.g. a corrupt one) and train from the start")
    t.set_defaults(func=_train)

    e = sub.add_parser("eval", help="evaluate a finished run on a data set (cross-dataset via canonical classes)")
    e.add_argument("run", type=Path, help="run directory")
    e.add_argument("--dataset", required=True)
    e.add_argument("--root", type=Path, default=None)
    e.add_argument("--split", default="test")
    e.add_argument("--option", action="append", type=_kv, metavar="KEY=VALUE", help="loader option")
    e.set_defaults(func=_eval)

    b = sub.add_parser("bench", help="train-step and data-pipeline throughput")
    b.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    b.add_argument("--rounds", type=int, default=30, help="rounds in which every algorithm takes its turn")
    b.add_argument("--steps-per-round", type=int, default=1, help="steps of one algorithm per turn")
    b.add_argument("--threads", type=int, default=1, help="torch CPU threads while measuring (default 1)")
    b.add_argument("--config", default=None,
                   help="training config whose network and step shape to time (data stay SynthFER)")
    b.add_argument("--batch-size", type=int, default=None, help="labeled per step (default 32, or the config's)")
    b.add_argument("--size", type=int, default=None, help="image side (default 48, or the config's)")
    b.add_argument("--model", default=None, help="timm name (default resnet18, or the config's)")
    b.add_argument("--no-flops", action="store_true", help="skip the FLOP count and the matmul peak")
    b.add_argument("--views-seconds", type=float, default=2.0, help="seconds per view measurement (default 2)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=_bench)

    r = sub.add_parser("results", help="record the real-data runs of results/grid.yaml, say what remains, plan the seeds, read the planned family, or replay a recorded run's first steps")
    r.add_argument("results_command", choices=("record", "status", "plan", "family", "replay"))
    r.add_argument("runs", nargs="*", metavar="RUN",
                   help="replay: recorded runs to train again and compare (names in --results-dir, or folders)")
    r.add_argument("--halfwidth", type=float, default=1.0,
                   help="plan: the 95 %% half-width each planned comparison should reach, in points (default 1)")
    r.add_argument("--metric", default="accuracy (%)",
                   choices=("accuracy (%)", "mean class accuracy (%)", "macro F1 (%)"),
                   help="family: the score the planned comparisons are read on (default test accuracy)")
    r.add_argument("--steps", type=int, default=500, help="replay: how many of the run's first steps (default 500)")
    r.add_argument("--log", action="store_true",
                   help="replay: append each outcome, with this code and CPU kind, to replays.jsonl in --results-dir")
    r.add_argument("--grid", type=Path, default=Path("results/grid.yaml"))
    r.add_argument("--results-dir", type=Path, default=Path("results"))
    r.add_argument("--root", action="append", type=_kv, metavar="DATASET=PATH",
                   help="where a data set lies, e.g. ferplus=/data/ferplus")
    r.add_argument("--only", action="append", metavar="GLOB", help="record only runs whose name matches")
    r.add_argument("--variant", default=None, metavar="NAME",
                   help="record only the runs of the grid groups with this variant ('' for the profile's), "
                        "e.g. 'no label smoothing' for the primary grid")
    r.add_argument("--seed-major", action="store_true",
                   help="every method of a seed before the next seed: whole seeds on one machine")
    r.add_argument("--jobs", type=int, default=1, help="runs side by side (each uses the threads its config sets)")
    r.add_argument("--cache-dir", type=Path, default=None)
    r.set_defaults(func=_results)

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
    lab.set_defaults(func=_labs)

    data = sub.add_parser("data", help="data set tools")
    dsub = data.add_subparsers(dest="data_command", required=True)
    from ssfer.data import check

    check.add_cli(dsub)

    if tooling:
        from ssfer import reproduce

        reproduce.add_cli(sub)
    else:
        sub.add_parser(TOOLING, help=TOOLING_HELP, add_help=False)
    # --debug also after the command; SUPPRESS keeps the command's default from
    # overwriting a --debug given before it
    for command in sub.choices.values():
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return p


def _who() -> str:
    # under torchrun every rank reports: the launcher stops the other ranks as soon
    # as one exits, so a rank left to print for all may be killed before it does
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return f"ssfer (rank {os.environ.get('RANK', '?')})"
    return "ssfer"


def _leave_process_group() -> None:
    # under torchrun a rank that stops on an error must still leave the group
    # cleanly, or its exit turns into a hang or a teardown warning
    if "torch" not in sys.modules:
        return
    import torch.distributed as tdist

    if tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    """Expected errors (``ssfer.errors.SsferError``: config, data, checkpoint,
    non-finite loss, unwritable run folder) end in one line on stderr and a
    non-zero exit, on every torchrun rank; ``--debug`` shows their traceback.
    Anything else is a bug and keeps its traceback."""
    from ssfer.errors import ConfigError, SsferError

    command, _ = build_parser().parse_known_args(argv)
    try:
        parser = build_parser(tooling=command.command == TOOLING)
    except ImportError as e:
        print(f"ssfer: ssfer {TOOLING} needs the book extra (pip install 'ssfer[book]'): {e}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SsferError as e:
        if getattr(args, "debug", False):
            raise
        print(f"{_who()}: {e.kind}: {' '.join(str(e).split())}", file=sys.stderr)
        return 2 if isinstance(e, ConfigError) else 1
    finally:
        _leave_process_group()


if __name__ == "__main__":
    sys.exit(main())
