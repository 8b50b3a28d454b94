"""Recorded runs on real faces: the planned grid, recording one run, reading them back.

A recorded run is a folder of ``results/`` holding the five small files a run
leaves that may be committed (``ARTIFACTS``): never weights, images or arrays.
``results/grid.yaml`` lists the runs the book's results chapter needs; ``ssfer
results record`` trains whichever are missing (resumable: a finished folder is
never trained again, an interrupted run resumes from its checkpoint in the
cache) and ``ssfer results status`` says what is recorded and what remains.
"""
from __future__ import annotations

import fnmatch
import json
import shlex
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import yaml

from ssfer.algo.compose import RECIPES, display_name
from ssfer.config import Config, ConfigError
from ssfer.io import atomic_write_text
from ssfer.record import RunRecord, cpu_kind

ARTIFACTS = ("config.yaml", "summary.json", "metrics.jsonl", "environment.json", "command.txt")
RUN_FILES = ARTIFACTS[:-1]  # what the trainer writes; command.txt is the recorder's
REPLAYS = "replays.jsonl"   # beside the run folders: the replays `ssfer results replay --log` kept


@dataclass(frozen=True)
class Planned:
    """One run of the grid: a ready config plus overrides, under a folder name."""

    name: str
    config: str                      # path of a configs/*.yaml, relative to the repository root
    overrides: dict[str, Any] = field(default_factory=dict)
    variant: str = ""                # a control's name (e.g. "no label smoothing"); "" for the profile itself

    def resolve(self, root: Path, data_roots: dict[str, str]) -> Config:
        cfg = Config.from_yaml(root / self.config).with_overrides(self.overrides)
        dataset = cfg.data.dataset
        if dataset != "synthfer":
            if dataset not in data_roots:
                raise ConfigError(f"run {self.name!r} needs data set {dataset!r}: pass --root {dataset}=PATH")
            cfg = cfg.with_overrides({"data.root": data_roots[dataset]})
        return cfg.with_overrides({"train.progress": False})

    def command(self, root: Path, data_roots: dict[str, str]) -> str:
        """The ``ssfer train`` command that trains this run by hand."""
        sets = dict(self.overrides)
        ds = Config.from_yaml(root / self.config).data.dataset
        if ds in data_roots:
            sets["data.root"] = data_roots[ds]
        parts = ["ssfer", "train", "--config", self.config]
        for k, v in sets.items():
            parts += ["--set", f"{k}={json.dumps(v) if isinstance(v, (dict, list)) else v}"]
        return shlex.join(parts)


def load_grid(path: str | Path) -> list[Planned]:
    """``grid.yaml``: ``{groups: [{config, seeds, algorithms, name, set, variant}]}``
    expanded to one ``Planned`` per (algorithm, seed); ``name`` is a format string
    over ``algorithm`` and ``seed``; ``variant`` (optional) names a control group,
    whose runs the tables keep apart from the profile's. Names must be unique."""
    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: cannot read the grid: {e}") from e
    groups = spec.get("groups")
    if not isinstance(groups, list):
        raise ConfigError(f"{path}: expected a list under 'groups'")
    out: list[Planned] = []
    for i, g in enumerate(groups):
        where = f"{path}: groups[{i}]"
        unknown = set(g) - {"config", "seeds", "algorithms", "name", "set", "variant"}
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}")
        try:
            config, name = str(g["config"]), str(g["name"])
            seeds, algorithms = list(g["seeds"]), list(g["algorithms"])
        except KeyError as e:
            raise ConfigError(f"{where}: missing {e}") from None
        for algorithm in algorithms:
            for seed in seeds:
                overrides = {"algo.name": algorithm, "split.seed": seed, "train.seed": seed, **(g.get("set") or {})}
                out.append(Planned(name.format(algorithm=algorithm, seed=seed), config, overrides,
                                   str(g.get("variant") or "")))
    names = [p.name for p in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"{path}: run names repeat: {dup}")
    return out


def is_recorded(results_dir: Path, name: str) -> bool:
    return all((results_dir / name / f).is_file() for f in ARTIFACTS)


def record(planned: Planned, root: Path, results_dir: Path, data_roots: dict[str, str],
           cache_dir: str | None = None) -> Path:
    """Train (or load from the cache) one planned run and copy its record into
    ``results_dir/<name>``; the folder appears complete or not at all."""
    from ssfer.train import run

    cfg = planned.resolve(root, data_roots)
    rec = run(cfg, cache_dir=cache_dir)
    dest = results_dir / planned.name
    staging = results_dir / f".{planned.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for f in RUN_FILES:
        shutil.copy2(rec.run_dir / f, staging / f)
    atomic_write_text(staging / "command.txt",
                      "# recorded by: ssfer results record --only " + planned.name + "\n"
                      + planned.command(root, data_roots) + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)
    return dest


def _record_task(args: tuple) -> tuple[str, str]:
    planned, root, results_dir, data_roots, cache_dir = args
    try:
        record(planned, root, results_dir, data_roots, cache_dir)
        return planned.name, ""
    except Exception as e:  # reported per run: one bad run must not stop the grid
        return planned.name, f"{type(e).__name__}: {e}"


def pending(grid: list[Planned], results_dir: Path, only: list[str] | None = None, variant: str | None = None,
            seed_major: bool = False) -> list[Planned]:
    """The runs of ``grid`` not yet recorded, in grid order: those whose name
    matches a glob of ``only`` and, with ``variant``, of that grid group's variant
    ("" for the profile's). ``seed_major``: every method of a seed before the next
    seed, so that a machine that records a few runs records whole seeds, and each
    seed's paired comparisons come from one CPU kind."""
    chosen = [p for p in grid if (not only or any(fnmatch.fnmatch(p.name, pat) for pat in only))
              and (variant is None or p.variant == variant)]
    todo = [p for p in chosen if not is_recorded(results_dir, p.name)]
    if seed_major:
        todo.sort(key=lambda p: p.overrides.get("split.seed", 0))  # stable: grid order within a seed
    return todo


def _source(env: dict) -> dict:
    """Where a run came from, short: its code fingerprint, commit and CPU kind."""
    return {"code": (env.get("code_fingerprint") or "?")[:8], "commit": (env.get("git_commit") or "?")[:7],
            "CPU kind": cpu_kind(env)}


def open_seeds(grid: list[Planned], results_dir: Path, variant: str | None = None) -> list[dict]:
    """The seeds of ``grid`` (of ``variant``'s groups) that are part recorded: per
    grid group and seed with runs both recorded and still to record, the CPU kinds
    and code fingerprints (short) its recorded runs came from and the runs left.
    Completing such a seed on another kind, or with other code, mixes them within
    its paired comparisons."""
    seeds: dict[tuple, list[Planned]] = {}
    for p in grid:
        if variant is None or p.variant == variant:
            # a group at one seed: everything but the method and the seed is shared
            rest = {k: v for k, v in p.overrides.items() if k not in ("algo.name", "train.seed", "split.seed")}
            key = (p.config, p.variant, json.dumps(rest, sort_keys=True, default=str), p.overrides.get("split.seed", 0))
            seeds.setdefault(key, []).append(p)
    out = []
    for (_, var, _, seed), runs in seeds.items():
        done = [p for p in runs if is_recorded(results_dir, p.name)]
        if not done or len(done) == len(runs):
            continue
        sources = [_source(json.loads((results_dir / p.name / "environment.json").read_text())) for p in done]
        out.append({"seed": seed, "variant": var, "recorded": [p.name for p in done],
                    "left": [p.name for p in runs if p not in done],
                    **{key: sorted({s[col] for s in sources})
                       for key, col in (("kinds", "CPU kind"), ("codes", "code"), ("commits", "commit"))}})
    return out


def record_grid(grid: list[Planned], root: Path, results_dir: Path, data_roots: dict[str, str], jobs: int = 1,
                only: list[str] | None = None, cache_dir: str | None = None, variant: str | None = None,
                seed_major: bool = False) -> dict[str, str]:
    """Record every missing run of the grid (``pending``'s choice and order), ``jobs``
    at a time (each run sets its own thread count in its config); returns {name:
    error or ""}."""
    todo = pending(grid, results_dir, only, variant, seed_major)
    tasks = [(p, root, results_dir, data_roots, cache_dir) for p in todo]
    done: dict[str, str] = {}
    if jobs <= 1:
        for t in tasks:
            name, err = _record_task(t)
            done[name] = err
            print(f"{name}: {err or 'recorded'}", file=sys.stderr, flush=True)
        return done
    # spawn: each run gets a fresh interpreter (and its own torch thread pool)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_record_task, t) for t in tasks]
        for f in as_completed(futures):
            name, err = f.result()
            done[name] = err
            print(f"{name}: {err or 'recorded'}", file=sys.stderr, flush=True)
    return done


def load_results(results_dir: str | Path, names: list[str] | None = None) -> dict[str, RunRecord]:
    """Every recorded run folder (or those named), checked for its five files."""
    results_dir = Path(results_dir)
    folders = sorted(d for d in results_dir.iterdir() if d.is_dir() and not d.name.startswith(".")) \
        if results_dir.is_dir() else []
    known = [d.name for d in folders]
    unknown = sorted(set(names or ()) - set(known))
    if unknown:
        raise ValueError(f"no recorded run {unknown} in {results_dir} (recorded: {known or 'none'})")
    out = {}
    for d in folders:
        if names and d.name not in names:
            continue
        missing = [f for f in ARTIFACTS if not (d / f).is_file()]
        if missing:
            raise FileNotFoundError(f"{d}: a recorded run needs {', '.join(ARTIFACTS)}; missing {', '.join(missing)}")
        out[d.name] = RunRecord.load(d)
    return out


def replay(run_dir: str | Path, data_roots: dict[str, str], steps: int) -> dict:
    """Train a recorded run's config again for its first ``steps`` steps, here, and
    compare the logged rows with the record's, wall-clock times left out.

    Equal rows say that this code on this machine trains the recorded run bit for
    bit (the check a change to training code must pass before runs are mixed);
    runs do not repeat bit for bit across CPUs with other instruction sets.
    Returns {"run", "steps", "rows", "identical", "first_difference"}."""
    from ssfer.train.loop import Trainer

    recorded = RunRecord.load(run_dir)
    cfg = recorded.config
    if cfg.data.dataset != "synthfer":
        if cfg.data.dataset not in data_roots:
            raise ConfigError(f"{run_dir}: needs data set {cfg.data.dataset!r}: pass --root {cfg.data.dataset}=PATH")
        cfg = cfg.with_overrides({"data.root": data_roots[cfg.data.dataset]})
    if not 0 < steps <= cfg.train.steps:
        raise ConfigError(f"replay: steps={steps} must be in 1..{cfg.train.steps} (the run's train.steps)")
    trainer = Trainer(cfg.with_overrides({"train.progress": False}))
    trainer.fit(stop_after=steps)
    timeless = RunRecord(cfg, trainer.history, {}).history_without_timing()
    old = [r for r in recorded.history_without_timing() if r["step"] <= steps]
    first = next(({"step": a.get("step"), "recorded": a, "replayed": b} for a, b in zip(old, timeless) if a != b),
                 None)
    if first is None and len(old) != len(timeless):
        first = {"step": None, "recorded": f"{len(old)} rows", "replayed": f"{len(timeless)} rows"}
    return {"run": str(run_dir), "steps": steps, "rows": len(old), "identical": first is None,
            "first_difference": first}


def log_replay(results_dir: Path, out: dict) -> None:
    """Append one ``replay`` outcome to ``results_dir/replays.jsonl``: the code,
    commit and CPU kind the run was recorded with and those it was replayed with,
    the evidence that runs recorded apart may be paired (the file is rewritten
    whole, so a crash leaves the old one)."""
    import datetime

    from ssfer.record import environment

    diff = out["first_difference"] or {}
    recorded = _source(RunRecord.load(out["run"]).environment or {})
    row = {"run": Path(out["run"]).name, "steps": out["steps"], "rows": out["rows"], "identical": out["identical"],
           "first difference at step": diff.get("step"),
           **{f"recorded {k}": v for k, v in recorded.items()},
           **{f"replayed {k}": v for k, v in _source(environment()).items()},
           "date": datetime.date.today().isoformat()}
    path = Path(results_dir) / REPLAYS
    old = path.read_text() if path.is_file() else ""
    atomic_write_text(path, old + json.dumps(row) + "\n")


def load_replays(results_dir: str | Path) -> list[dict]:
    """The logged replays (``log_replay``), oldest first; none when there is no log."""
    path = Path(results_dir) / REPLAYS
    if not path.is_file():
        return []
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{i}: not a JSON object ({e.msg})") from None
    return rows


# ------------------------------------------------------------------ reading the grid
METHODS = {name: display_name(name) for name in RECIPES}  # display names, from the recipes
# display names of the data sets (the loaders' registry is ssfer.data.DATASETS)
DATASET_NAMES = {"ferplus": "FERPlus", "fer2013": "FER2013", "rafdb": "RAF-DB", "affectnet": "AffectNet",
                 "synthfer": "SynthFER"}
# the comparisons the results chapter makes at every budget: the method against its
# baseline and its parts, DTA against the other per-class thresholds, then (in
# ``comparisons``) each method against training on the labels alone
KEY_COMPARISONS = (("DTA+SNL", "FixMatch"), ("DTA", "FixMatch"), ("DTA+SNL", "DTA"),
                   ("DTA", "FlexMatch"), ("DTA", "FreeMatch"), ("DTA", "Ada-CM"))


# The primary grid (issue 19) and its planned family: the comparisons named before
# the runs, each read against 0 and against report.MARGIN; every other interval of
# the chapter is exploration.
PRIMARY = {"data set": "FERPlus", "budget": "10 % labeled", "variant": "no label smoothing"}
PRIMARY_NAME = ", ".join(PRIMARY.values())   # "FERPlus, 10 % labeled, no label smoothing"
PLANNED = (("DTA+SNL", "FixMatch"), ("DTA", "FlexMatch"), ("DTA+SNL", "DTA"),
           ("FixMatch", "supervised"), ("DTA+SNL", "supervised"))
MAX_SEEDS = 15         # the grid grows to at most this many seeds
MIN_TEST_FACES = 50    # a class with fewer test faces gets its counts, not a verdict


def budget_of(cfg: Config) -> str:
    """The label budget of a run, as the results tables name it."""
    s = cfg.split
    return {"per_class": f"{s.n_per_class} per class", "adacm_rafdb": f"{s.total} labels",
            "fraction": f"{100 * s.fraction:g} % labeled", "all": "all labels"}[s.protocol]


def results_table(records: dict[str, RunRecord], grid: list[Planned] | None = None):
    """One row per recorded run: data set, budget, method, seed, variant (the
    grid group's control name, "" for the profile and for runs not in ``grid``);
    test scores in % as published and leak-free; validation accuracy; the
    commonest-class rate of the test split (what always answering its largest
    class scores); minutes."""
    import numpy as np
    import pandas as pd

    variant = {p.name: p.variant for p in grid or ()}
    rows = []
    for name, rec in records.items():
        c, s = rec.config, rec.summary
        cm = np.asarray(s["confusion"])
        lf = s.get("test_leak_free") or {}
        rows.append({
            "run": name, "data set": DATASET_NAMES.get(c.data.dataset, c.data.dataset), "budget": budget_of(c),
            "method": METHODS.get(c.algo.name, c.algo.name), "seed": c.split.seed, "variant": variant.get(name, ""),
            "accuracy (%)": 100 * s["accuracy"], "mean class accuracy (%)": 100 * s["mean_class_accuracy"],
            "macro F1 (%)": 100 * s["macro_f1"],
            "leak-free accuracy (%)": 100 * lf["accuracy"] if lf else float("nan"),
            "leak-free mean class accuracy (%)": 100 * lf["mean_class_accuracy"] if lf else float("nan"),
            "val accuracy (%)": 100 * s["val"]["accuracy"] if "val" in s else float("nan"),
            "commonest class (%)": 100 * cm.sum(1).max() / cm.sum(),
            "labeled": s["n_labeled"], "unlabeled": s["n_unlabeled"], "steps": s["steps"],
            "train minutes": s["train_seconds"] / 60, "device": s["device"],
        })
    return pd.DataFrame(rows)


def mean_sd(table, metrics=("accuracy (%)", "mean class accuracy (%)", "leak-free accuracy (%)"),
            by=("data set", "budget", "method")):
    """Mean ± sd over seeds of each metric, one row per (data set, budget, method),
    with the number of seeds and the mean training minutes."""
    import pandas as pd

    g = table.groupby(list(by), sort=False)
    out = g.size().rename("seeds").to_frame()
    for m in metrics:
        mean, sd = g[m].mean(), g[m].std(ddof=1)
        out[m] = [f"{a:.1f} ± {b:.1f}" if pd.notna(b) else f"{a:.1f}" for a, b in zip(mean, sd)]
    out["train minutes"] = g["train minutes"].mean()
    return out.reset_index()


def comparisons(table, metric: str, **where):
    """The paired comparisons of ``KEY_COMPARISONS`` and of every method against
    supervised training, on ``metric``, over the runs matching ``where`` (e.g.
    ``budget="10 % labeled"``); only those whose two methods both have runs."""
    from ssfer.report import compare, select

    rows = select(table, **where)
    have = set(rows["method"])
    pairs = [p for p in KEY_COMPARISONS if set(p) <= have]
    pairs += [(m, "supervised") for m in METHODS.values() if m != "supervised" and {m, "supervised"} <= have]
    return [compare(rows, a, b, metric) for a, b in pairs]


def pair_values(name: str, table, a: str, b: str, metric: str = "accuracy (%)", by: str = "method",
                **where) -> dict:
    """What the prose cites of the paired comparison of ``a`` and ``b`` (values of
    column ``by``) in the runs matching ``where`` (``report.comparison_values``'
    keys); when either has no recorded run yet, the same keys say so."""
    from ssfer.report import compare, comparison_values, select

    rows = select(table, **where)
    if not {a, b} <= set(rows[by]):
        return {f"{name}_mean": "—", f"{name}_low": "—", f"{name}_high": "—", f"{name}_wins": 0, f"{name}_n": 0,
                f"{name}_verdict": "not recorded yet: no claim"}
    return comparison_values(name, compare(rows, a, b, metric, by=by))


def primary_planned(grid: list[Planned], root: Path) -> list[Planned]:
    """The planned runs of the primary grid (``PRIMARY``: data set, budget and
    variant), read from their configs (each file once); ``root``: the folder the
    grid's config paths are relative to."""
    base = {c: Config.from_yaml(Path(root) / c) for c in dict.fromkeys(p.config for p in grid)}
    out = []
    for p in grid:
        if p.variant != PRIMARY["variant"]:
            continue
        cfg = base[p.config].with_overrides(p.overrides)
        if DATASET_NAMES.get(cfg.data.dataset) == PRIMARY["data set"] and budget_of(cfg) == PRIMARY["budget"]:
            out.append(p)
    return out


def seconds_per_run(rows) -> dict[str, float]:
    """Each method's mean recorded training seconds per run: what a run still to
    record is costed at (an upper bound where the runs shared their cores)."""
    return (rows.groupby("method")["train minutes"].mean() * 60).to_dict()


def plan(table, half_width: float = 1.0, family=PLANNED, metric: str = "accuracy (%)",
         max_seeds: int = MAX_SEEDS, **where):
    """How many paired seeds each planned comparison needs for a 95 % interval of
    at most ``half_width`` (in the metric's unit), from the recorded runs matching
    ``where`` (e.g. ``**PRIMARY``): one row per comparison with the seeds it has,
    the standard deviation of its paired differences, today's half-width, the
    seeds needed (``report.seeds_for_half_width``; capped at ``max_seeds``), how
    many more that is, and the CPU hours of those runs from the recorded
    ``train_seconds`` (the mean per run of each of its two methods)."""
    import pandas as pd

    from ssfer.report import compare, seeds_for_half_width, select

    rows = select(table, **where)
    seconds = seconds_per_run(rows)
    out = []
    for a, b in family:
        if not {a, b} <= set(rows["method"]):
            out.append({"comparison": f"{a} − {b}", "seeds": 0, "sd": float("nan"), "half-width": float("nan"),
                        "seeds needed": float("nan"), "more seeds": float("nan"), "CPU hours": float("nan")})
            continue
        p = compare(rows, a, b, metric).paired
        need = min(seeds_for_half_width(p.sd, half_width), max_seeds) if p.n >= 2 else float("nan")
        more = max(0, need - p.n) if p.n >= 2 else float("nan")
        out.append({"comparison": f"{a} − {b}", "seeds": p.n, "sd": p.sd, "half-width": p.half_width,
                    "seeds needed": need, "more seeds": more,
                    "CPU hours": more * (seconds[a] + seconds[b]) / 3600 if p.n >= 2 else float("nan")})
    return pd.DataFrame(out)


def plan_total(table, plan_frame, **where) -> dict:
    """The grid's whole plan: every method of the family runs at every seed, so
    the family needs the most seeds any comparison needs. Returns the seeds
    recorded for every method, the seeds needed, and the CPU hours of the runs
    still to record (mean recorded ``train_seconds`` per run of each method)."""
    import math

    from ssfer.report import select

    rows = select(table, **where)
    methods = list(dict.fromkeys(m for pair in PLANNED for m in pair))
    per_method = {m: set(rows.loc[rows["method"] == m, "seed"]) for m in methods}
    complete = set.intersection(*per_method.values())
    needed = [v for v in plan_frame["seeds needed"] if isinstance(v, (int, float)) and math.isfinite(v)]
    need = max([int(v) for v in needed] + [len(s) for s in per_method.values()]) if needed else 0
    seconds = seconds_per_run(rows)
    todo = {m: max(0, need - len(seeds)) for m, seeds in per_method.items()}
    return {"complete seeds": len(complete), "seeds needed": need, "runs to record": sum(todo.values()),
            "CPU hours": sum(n * seconds[m] for m, n in todo.items() if m in seconds) / 3600,
            "not timed": [m for m, n in todo.items() if n and m not in seconds]}


def class_table(records: dict[str, RunRecord], grid: list[Planned] | None = None):
    """Per-class test recall of every run, long: the ``results_table`` keys (run,
    data set, budget, method, seed, variant), ``class``, ``recall (%)`` and
    ``test faces`` (the class's count in the test split, from the confusion matrix)."""
    import numpy as np
    import pandas as pd

    from ssfer.report import recall_per_class

    keys = results_table(records, grid)[["run", "data set", "budget", "method", "seed", "variant"]]
    rows = []
    for (_, k), rec in zip(keys.iterrows(), records.values()):
        cm = np.asarray(rec.summary["confusion"])
        for c, r, n in zip(rec.class_names, recall_per_class(cm), cm.sum(1)):
            rows.append({**k.to_dict(), "class": c, "recall (%)": 100 * r, "test faces": int(n)})
    return pd.DataFrame(rows)


def class_comparisons(classes, family=PLANNED, classes_of=None, min_faces: int = MIN_TEST_FACES, **where):
    """The planned family's paired difference of each class's recall (points),
    over the runs of ``classes`` (a ``class_table``) matching ``where``; one row per
    comparison and class, with the class's test faces. A class with fewer than
    ``min_faces`` test faces gets its interval but no verdict ("too few test
    faces"): its recall moves in steps of several points."""
    import pandas as pd

    from ssfer.report import compare, interval, select

    rows = select(classes, **where)
    out = []
    for cls in classes_of or list(dict.fromkeys(rows["class"])):
        sub = rows[rows["class"] == cls]
        faces = int(sub["test faces"].max()) if len(sub) else 0
        for a, b in family:
            if not {a, b} <= set(sub["method"]):
                continue
            c = compare(sub, a, b, "recall (%)")
            p = c.paired
            out.append({"class": cls, "test faces": faces, "comparison": c.label, "mean difference": p.mean,
                        "95 % interval": interval(p), "wins": f"{p.wins}/{p.n}",
                        "verdict": class_verdict(c, faces, min_faces)})
    return pd.DataFrame(out)


def class_verdict(c, faces: int, min_faces: int = MIN_TEST_FACES) -> str:
    """``c``'s reading against the margin, or no claim when the measure rests on
    fewer than ``min_faces`` test faces (a recall that moves in steps of several points)."""
    return c.margin_verdict() if faces >= min_faces else f"too few test faces ({faces}): no claim"


def provenance(records: dict[str, RunRecord]):
    """Where each run came from: its code fingerprint (short), commit, CPU kind
    (instruction set and model, "not recorded" for runs from before they were)
    and threads, one row per run. Runs repeat bit for bit only with the same code
    on the same CPU kind."""
    import pandas as pd

    rows = []
    for name, rec in records.items():
        env = rec.environment or {}
        rows.append({"run": name, **_source(env), "threads": env.get("cpu_threads")})
    return pd.DataFrame(rows, columns=["run", "code", "commit", "CPU kind", "threads"])
