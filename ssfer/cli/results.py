"""``ssfer results record|status|plan|family|replay``: the recorded real-face grid.

Each verb is its own subcommand with its own flags; ``record``, ``status``,
``plan`` and ``family`` read the grid (``--grid``), ``replay`` needs only the run."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ssfer.book import engine
from ssfer.cli.options import key_path
from ssfer.errors import ConfigError

VERBS = ("record", "status", "plan", "family", "replay")


def _grid_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--grid", type=Path, default=Path("results/grid.yaml"), help="default results/grid.yaml")
    p.add_argument("--results-dir", type=Path, default=Path("results"), help="default results/")


def _choice_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--only", action="append", metavar="GLOB", help="only runs whose name matches (repeatable)")
    p.add_argument("--variant", default=None, metavar="NAME",
                   help="only the runs of the grid groups with this variant ('' for the profile's), "
                        "e.g. 'no label smoothing' for the primary grid")
    p.add_argument("--seed-major", action="store_true",
                   help="every method of a seed before the next seed: whole seeds on one machine")
    p.add_argument("--then", action="append", default=[], metavar="GLOB",
                   help="a later stage (repeatable): the runs it matches after those of --only and of each "
                        "earlier --then, in one command that keeps every core busy across the boundaries")


def _root_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", action="append", type=key_path, metavar="DATASET=PATH",
                   help="where a data set lies, e.g. ferplus=/data/ferplus (repeatable)")


def add_cli(sub) -> argparse.ArgumentParser:
    r = sub.add_parser("results", help="record the real-data runs of results/grid.yaml, say what remains, "
                                       "plan the seeds, read the planned families, or replay a recorded run")
    rsub = r.add_subparsers(dest="results_command", required=True, metavar="{" + ",".join(VERBS) + "}")

    rec = rsub.add_parser("record", help="train and record every missing run of the grid (resumable)")
    _grid_flags(rec)
    _choice_flags(rec)
    _root_flag(rec)
    rec.add_argument("--jobs", type=int, default=1,
                     help="worker processes of the embedded Dask cluster: runs side by side (each uses the "
                          "threads its config sets); ignored with --scheduler")
    rec.add_argument("--mix-seeds", action="store_true",
                     help="complete part-recorded seeds even where their recorded runs came from another CPU "
                          "kind or training code and no identical replay here pairs them (refused without it, "
                          "here before training and for each run that comes back from a worker)")
    rec.add_argument("--cache-dir", type=Path, default=None,
                     help="run cache, on each worker (default its $SSFER_CACHE or ~/.cache/ssfer)")
    engine.add_flags(rec, "each worker needs this project at this commit and the data at --root (or under its "
                          "own $SSFER_DATA_ROOT); the records come back to --results-dir here")
    rec.set_defaults(func=record)

    st = rsub.add_parser("status", help="what is recorded, what remains (and how far its checkpoints got), "
                                        "and the part-recorded seeds")
    _grid_flags(st)
    _choice_flags(st)
    st.add_argument("--cache-dir", type=Path, default=None,
                    help="the run cache whose checkpoints `results record` resumes here "
                         "(default $SSFER_CACHE or ~/.cache/ssfer)")
    st.set_defaults(func=status)

    pl = rsub.add_parser("plan", help="the paired seeds each planned comparison still needs, and their CPU time")
    _grid_flags(pl)
    pl.add_argument("--halfwidth", type=float, default=1.0,
                    help="the 95 %% half-width each planned comparison should reach, in points (default 1)")
    pl.set_defaults(func=plan)

    fa = rsub.add_parser("family", help="the planned families, read family-wise as the chapter Results on real faces reads them")
    _grid_flags(fa)
    fa.add_argument("--metric", default="accuracy (%)",
                    choices=("accuracy (%)", "mean class accuracy (%)", "macro F1 (%)"),
                    help="the score the planned comparisons are read on (default test accuracy)")
    fa.add_argument("--readme", type=Path, default=None, metavar="FILE",
                    help="also write the bottom line into FILE's headline block (README.md), atomically")
    fa.set_defaults(func=family)

    rp = rsub.add_parser("replay", help="train a recorded run's first steps again here and compare them")
    rp.add_argument("runs", nargs="+", metavar="RUN", help="recorded runs (names in --results-dir, or folders)")
    rp.add_argument("--results-dir", type=Path, default=Path("results"), help="default results/")
    _root_flag(rp)
    rp.add_argument("--steps", type=int, default=500, help="how many of the run's first steps (default 500)")
    rp.add_argument("--log", action="store_true",
                    help="append each outcome, with this code and CPU kind, to replays.jsonl in --results-dir")
    rp.set_defaults(func=replay)
    return r


def old_spelling(argv: list[str]) -> list[str]:
    """``ssfer results --grid G status`` (flags before the verb, as the single
    parser took them) is ``ssfer results status --grid G``."""
    if len(argv) > 2 and argv[0] == "results" and argv[1].startswith("-") and argv[1] not in ("-h", "--help"):
        verbs = [i for i, a in enumerate(argv) if a in VERBS]
        if verbs:
            i = verbs[0]
            return ["results", argv[i], *argv[1:i], *argv[i + 1:]]
    return argv


def _print_open_seeds(seeds: list[dict], results_dir: Path) -> list[dict]:
    """Say which part-recorded seeds this machine would complete on their own CPU
    kind and code (or with replays logged identical here); return those it would
    not, each with its ``unpaired`` runs."""
    if not seeds:
        return []
    from ssfer.book.recording import REPLAYS, unpaired_runs
    from ssfer.record import this_cpu_kind, training_code_digest

    here, code = this_cpu_kind(), training_code_digest()[:8]
    print(f"part-recorded seeds (this machine: {here}; training code {code}):")
    mixing = []
    for s in seeds:
        mixes = [what for what, theirs, ours in (("CPU kinds", s["kinds"], here), ("code versions", s["codes"], code))
                 if theirs != [ours]]
        unpaired = unpaired_runs(s, results_dir, here, code) if mixes else []
        of = f" of {s['variant']!r}" if s["variant"] else ""
        n = len(s["recorded"]) + len(s["left"])
        kinds = "; ".join("a CPU kind not recorded" if k == "not recorded" else k for k in s["kinds"])
        if not mixes:
            said = "this machine completes it alike"
        elif unpaired:
            said = f"completing it here mixes {' and '.join(mixes)}"
            mixing.append({**s, "unpaired": unpaired})
        else:
            said = (f"recorded with other {' and '.join(mixes)}, but each of its runs replayed identical here "
                    f"({REPLAYS}): this machine completes it alike")
        print(f"  seed {s['seed']}{of}: {len(s['recorded'])} of {n} runs recorded on {kinds}, "
              f"code {', '.join(s['codes'])} (commit {', '.join(s['commits'])}); {said}")
    return mixing


def _refuse_mixing(mixing: list[dict]) -> None:
    """`results record` does not pair runs of two CPU kinds or code versions
    within a seed unless told to: their difference would enter every paired
    comparison of that seed."""
    if not mixing:
        return
    from ssfer.book.recording import REPLAYS

    seeds = "; ".join(f"seed {s['seed']}" + (f" of {s['variant']!r}" if s["variant"] else "")
                      + f" ({', '.join(s['unpaired'])})" for s in mixing)
    raise ConfigError(
        f"recording here would complete part-recorded seeds with runs of another CPU kind or training code: "
        f"{seeds}. Record them on that kind and commit (`git worktree add DIR COMMIT`); or replay those runs "
        f"here (`ssfer results replay RUN --log`: an identical replay in {REPLAYS} pairs them); or remove their "
        f"folders so that the seed is recorded whole here; or leave them out with --only; or pass --mix-seeds "
        f"to pair them anyway")


def status(args: argparse.Namespace) -> int:
    from ssfer.book import pretraining_grid, progress, recording

    grid, pretrainings = recording.read_grid(args.grid)
    todo = recording.pending(grid, args.results_dir, args.only, args.variant, args.seed_major, list(pretrainings),
                             args.then)
    first = recording.pretrainings_to_run(pretrainings, todo, args.results_dir, args.only, args.variant)
    done = [p.name for p in grid if recording.is_recorded(args.results_dir, p.name)]
    root = recording.grid_root(args.grid, grid)
    if pretrainings:
        recorded = [n for n in pretrainings if pretraining_grid.is_recorded(args.results_dir, n)]
        print(f"{len(recorded)} of {len(pretrainings)} pretrainings of {args.grid} recorded in "
              f"{args.results_dir}/{pretraining_grid.FOLDER}/")
        partial = progress.partial(first, root, args.cache_dir, kind="pretraining")
        for pp in first:
            print(f"  {'weights needed' if pp.name in recorded else 'to record'}: {pp.name}"
                  + (f" ({partial[pp.name].says()})" if pp.name in partial else ""))
        priced = {n: pretraining_grid.load_recorded(args.results_dir, n) for n in recorded}
        said = pretraining_grid.cost_left([pp for pp in first if pp.name not in recorded], priced, root,
                                          {n: q.done for n, q in partial.items() if q.resumes and q.done is not None})
        if said:
            print(said)
        if any(pretraining_grid.PILOT in n for n in pretrainings):
            pilots = {n: r for n, r in priced.items() if pretraining_grid.PILOT in n}
            said = pretraining_grid.pilot_reading(pretrainings, pilots, root)
            print(f"the pilot's rule: {said[0].lower()}{said[1:]}")
    _print_pretrained_steps(grid, args)
    print(f"{len(done)} of {len(grid)} runs of {args.grid} recorded in {args.results_dir}/")
    partial = progress.partial(todo, root, args.cache_dir) if todo else {}
    for p in todo:
        said = [f"starts from {p.pretraining}"] if p.pretraining else []
        said += [partial[p.name].says()] if p.name in partial else []
        print(f"  to record: {p.name}" + (f" ({'; '.join(said)})" if said else ""))
    if todo:
        _print_cost(grid, args, root, [p.name for p in todo],
                    {n: q.done for n, q in partial.items() if q.resumes and q.done is not None})
    _print_open_seeds(recording.open_seeds(grid, args.results_dir, args.variant), args.results_dir)
    return 0


def _print_pretrained_steps(grid, args: argparse.Namespace) -> None:
    """Once the grid names fine-tunings of the pretrained start, what the next step
    of issue 32's order waits on: the fine-tuning setting chosen on validation, and
    the gate's verdict (chapter 07's own readings)."""
    from ssfer.book import ch07_pretrained as ch07
    from ssfer.errors import RunFolderError

    if not any(p.variant.startswith(ch07.TUNING) or p.variant == ch07.VARIANT for p in grid):
        return
    try:
        every = ch07.load(args.results_dir, args.grid).rec.every
    except (RunFolderError, ConfigError) as e:
        print(f"the fine-tuning choice and the gate cannot be read: {e}")
        return
    print(f"the fine-tuning choice: {ch07.tuning(every, grid)[0]['tuning_choice']}")
    print(f"the gate: {ch07.gate(every)[0]['gate_verdict']}")
    for what, group in (("the gate's group", ch07.gate_group(every, grid)),
                        ("the planned family's groups", ch07.family_groups(every, grid))):
        if group is not None:
            print(f"{what}, to name under `groups` in {args.grid} and commit before it is recorded:\n{group}")


def _print_cost(grid, args: argparse.Namespace, root: Path, names: list[str], trained: dict[str, int]) -> None:
    """About how many CPU hours of training the runs ``names`` still need, less the
    steps ``trained`` already (by name: the checkpoints recording resumes)."""
    from ssfer.book import recording
    from ssfer.errors import RunFolderError

    try:
        cost = recording.cost_left(grid, args.results_dir, names, root, trained)
    except (RunFolderError, ConfigError) as e:
        # an estimate is no reason for `status` to fail: what it could not read is named
        print(f"no estimate of the CPU hours left: {e}")
        return
    left = f"; {len(cost['not costed'])} not costed (no recorded run of their method)" if cost["not costed"] else ""
    print(f"about {cost['seconds'] / 3600:.1f} CPU hours of training for the {cost['costed']} runs costed "
          f"({cost['fastest'] / 3600:.1f} to {cost['slowest'] / 3600:.1f} at the fastest and slowest recorded "
          f"pace; each run at the mean recorded seconds per step of its method in its grid group, else "
          f"in the grid, times its steps{' left after its checkpoint' if trained else ''}){left}")


def family(args: argparse.Namespace) -> int:
    from ssfer.book import ch06_real_faces as ch06, ch07_pretrained as ch07

    rec = ch06.load(args.results_dir, args.grid)
    print(ch06.family_report(rec, args.metric))
    if (line := ch07.gate_line(rec)) is not None:
        print(line)
    if args.readme is not None:
        from ssfer.io import atomic_write_text

        try:
            text = args.readme.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"--readme {args.readme}: cannot read it ({e.strerror})") from None
        from ssfer.book import ch06_families as family_wise

        atomic_write_text(args.readme, family_wise.readme_with_headline(
            text, family_wise.headline(family_wise.read_families(rec))))
        print(f"wrote the bottom line into {args.readme}")
    return 0


def plan(args: argparse.Namespace) -> int:
    from ssfer.book import grid_tables, recording, verdicts

    grid = recording.load_grid(args.grid)
    table = grid_tables.results_table(recording.load_results(args.results_dir), grid)
    frame = grid_tables.plan(table, args.halfwidth, **grid_tables.PRIMARY)
    total = grid_tables.plan_total(table, frame, **grid_tables.PRIMARY)
    print(f"planned comparisons on {grid_tables.PRIMARY_NAME}; target 95 % half-width {verdicts.amount(args.halfwidth)} "
          f"(test accuracy), at most {grid_tables.MAX_SEEDS} seeds:")
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(f"the family: {total['complete seeds']} seeds recorded for every method; the most any comparison needs: "
          f"{total['seeds needed']}; {total['runs to record']} runs to record (each method up to its comparisons' "
          f"needs), about {total['CPU hours']:.1f} CPU hours "
          "(mean recorded train_seconds per run"
          + (f"; {', '.join(total['not timed'])} not counted: no run recorded yet)" if total["not timed"] else ")"))
    print(f"\nseeds each comparison would need, at its observed mean and sd, for its 95 % interval to clear 0 "
          f"after the Holm correction (alpha {verdicts.ALPHA:g}; a planning figure, not a promise):")
    for fam in grid_tables.load_families(args.grid):
        frame = grid_tables.holm_plan(table, fam)
        print(f"{fam.name}:")
        print(frame.to_string(index=False, na_rep="—", float_format=lambda v: f"{v:.3g}"))
    return 0


def replay(args: argparse.Namespace) -> int:
    from ssfer.book import recording

    roots = dict(args.root or [])
    same = True
    for name in args.runs:
        # a run's name in --results-dir, or the path of a run folder (as the shell completes it)
        given = Path(name)
        run_dir = given if (given / "summary.json").is_file() else args.results_dir / name
        out = recording.replay(run_dir, roots, args.steps)
        if args.log:
            recording.log_replay(args.results_dir, out)
        same &= out["identical"]
        verdict = "identical" if out["identical"] else f"differs first at {out['first_difference']}"
        print(f"{name}: {out['rows']} logged rows of the first {out['steps']} steps: {verdict}", flush=True)
    return 0 if same else 1


def record(args: argparse.Namespace) -> int:
    from ssfer.book import recording

    grid, pretrainings = recording.read_grid(args.grid)
    todo = recording.pending(grid, args.results_dir, args.only, args.variant, args.seed_major, list(pretrainings),
                             args.then)
    first = recording.pretrainings_to_run(pretrainings, todo, args.results_dir, args.only, args.variant)
    mixing = _print_open_seeds([s for s in recording.open_seeds(grid, args.results_dir, args.variant)
                                if {p.name for p in todo} & set(s["left"])], args.results_dir)
    if not args.mix_seeds:
        _refuse_mixing(mixing)
    if not todo and not first:
        print(f"every chosen run of {args.grid} is recorded in {args.results_dir}/", file=sys.stderr)
        return 0
    out: dict[str, str] = {}
    try:
        with engine.Engine.open(min(args.jobs, max(len(todo), len(first))), args.scheduler, args.scheduler_file,
                                args.retries) as runner:
            out = recording.record_grid(grid, Path.cwd(), args.results_dir, dict(args.root or []),
                                        only=args.only, cache_dir=str(args.cache_dir) if args.cache_dir else None,
                                        variant=args.variant, seed_major=args.seed_major, engine=runner,
                                        pretrainings=pretrainings, then=args.then,
                                        mix_seeds=args.mix_seeds)
    except KeyboardInterrupt:
        left = recording.pending(grid, args.results_dir, args.only, args.variant, args.seed_major, then=args.then)
        print(f"ssfer: interrupted; every finished run is recorded, {len(left)} are not: "
              "the same command records them", file=sys.stderr)
        return 130
    failed = {k: v for k, v in out.items() if v}
    for name, err in failed.items():
        print(f"ssfer: run {name} failed: {err}", file=sys.stderr)
    return 1 if failed else 0
