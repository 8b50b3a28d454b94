"""Recording the real-face grid: what runs, where, and the five files each leaves.

A recorded run is a folder of ``results/`` holding the five small files a run
leaves that may be committed (``ARTIFACTS``): never weights, images or arrays.
``results/grid.yaml`` lists the runs the book's results chapter needs; ``ssfer
results record`` trains whichever are missing (resumable: a finished folder is
never trained again, an interrupted run resumes from its checkpoint in the
cache) and ``ssfer results status`` says what is recorded and what remains.

The runs go through ``ssfer.book.engine`` (a Dask cluster, embedded or named):
a worker trains a run and sends its small files back as data (``train_run``);
this process writes them into ``results/`` (``commit``), so workers need no
share of ``results/``. A run being recorded is locked in ``results/.recording/``
(``claim``), so two commands on one grid never record a run twice.
"""
from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml

from ssfer.book.engine import Engine, Task
from ssfer.config import Config, ConfigError
from ssfer.errors import RunFolderError
from ssfer.data.errors import DataError
from ssfer.io import atomic_write_bytes, atomic_write_text, write_error
from ssfer.record import RunRecord, cpu_kind

ARTIFACTS = ("config.yaml", "summary.json", "metrics.jsonl", "environment.json", "command.txt")
RUN_FILES = ARTIFACTS[:-1]  # what the trainer writes; command.txt is the recorder's
REPLAYS = "replays.jsonl"   # beside the run folders: the replays `ssfer results replay --log` kept
LOCKS = ".recording"        # results/.recording/<run>.lock: held by the command recording that run
DATA_ROOT_ENV = "SSFER_DATA_ROOT"  # on a worker: a folder holding each data set under its name


@dataclass(frozen=True)
class Planned:
    """One run of the grid: a ready config plus overrides, under a folder name."""

    name: str
    config: str                      # path of a configs/*.yaml, relative to the repository root
    overrides: dict[str, Any] = field(default_factory=dict)
    variant: str = ""                # a control's name (e.g. "no label smoothing"); "" for the profile itself

    def resolve(self, root: Path, data_roots: dict[str, str]) -> Config:
        """The run's config, its data set at ``data_roots``' path; a data set not
        named there keeps its config's path, for the worker to find or refuse
        (``data_here``)."""
        cfg = Config.from_yaml(root / self.config).with_overrides(self.overrides)
        dataset = cfg.data.dataset
        if dataset != "synthfer" and dataset in data_roots:
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


def data_here(cfg: Config, where: str) -> Config:
    """``cfg`` with its data set's folder as this worker sees it: under
    ``$SSFER_DATA_ROOT`` (``<it>/<data set>``) where the worker sets it, else the
    path the command passed (``--root``). A worker without the folder fails
    the run, naming itself, the data set and the path."""
    ds = cfg.data.dataset
    if ds == "synthfer":
        return cfg
    env = os.environ.get(DATA_ROOT_ENV)
    path = Path(env).expanduser() / ds if env else Path(cfg.data.root)
    if not path.is_dir():
        whence = f"${DATA_ROOT_ENV}/{ds}" if env else f"--root {ds}"
        raise DataError(f"{where} has no data set {ds!r} at {path} (from {whence}): pass --root {ds}=PATH "
                        f"with its path on every worker, or set {DATA_ROOT_ENV} on the worker to a folder "
                        f"holding {ds}/")
    return cfg if str(path) == cfg.data.root else cfg.with_overrides({"data.root": str(path)})


@contextlib.contextmanager
def _argv(argv: list[str]) -> Iterator[None]:
    # environment.json names the command that recorded a run, not the worker's own
    old, sys.argv[:] = sys.argv[:], argv
    try:
        yield
    finally:
        sys.argv[:] = old


def train_run(cfg: dict, cache_dir: str | None, argv: list[str], code: str) -> dict:
    """A worker's part of recording a run: train ``cfg`` (or load it from this
    worker's run cache) and return its small files as data, with the data
    folder it read: ``{"files": {name: bytes}, "data_root": str | None}``."""
    from ssfer.book.engine import check_worker, here
    from ssfer.record import training_code_digest
    from ssfer.train import run

    where = here()
    check_worker(where, "trains", training_code_digest(), code)
    config = data_here(Config.from_dict(cfg), where)
    with _argv(argv):
        rec = run(config, cache_dir=cache_dir)
    return {"files": {f: (rec.run_dir / f).read_bytes() for f in RUN_FILES},
            "data_root": config.data.root if config.data.dataset != "synthfer" else None}


def commit(results_dir: Path, name: str, files: dict[str, bytes], command: str) -> Path:
    """Write a run's files and ``command.txt`` into ``results_dir/<name>``: into a
    staging folder first, renamed into place, so the folder appears complete or
    not at all (an interrupted commit leaves only the staging folder, which the
    next one clears)."""
    dest = results_dir / name
    staging = results_dir / f".{name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    for f in RUN_FILES:
        atomic_write_bytes(staging / f, files[f])
    atomic_write_text(staging / "command.txt", command)
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)
    return dest


def _command(planned: Planned, root: Path, data_roots: dict[str, str], used_root: str | None) -> str:
    roots = dict(data_roots)
    if used_root is not None:  # where the worker found the data: what the run's config says
        roots[Config.from_yaml(root / planned.config).data.dataset] = used_root
    return ("# recorded by: ssfer results record --only " + planned.name + "\n"
            + planned.command(root, roots) + "\n")


def record(planned: Planned, root: Path, results_dir: Path, data_roots: dict[str, str],
           cache_dir: str | None = None) -> Path:
    """Train (or load from the cache) one planned run here and commit its record
    into ``results_dir/<name>``; the folder appears complete or not at all."""
    from ssfer.record import training_code_digest

    out = train_run(planned.resolve(root, data_roots).to_dict(), cache_dir, list(sys.argv), training_code_digest())
    return commit(results_dir, planned.name, out["files"], _command(planned, root, data_roots, out["data_root"]))


def claim(held: contextlib.ExitStack, results_dir: Path, todo: list[Planned], say) -> list[Planned]:
    """The runs of ``todo`` this command records, each one's lock taken and held on
    ``held``: a run another command holds is left to it (``say`` tells), one
    another command recorded since ``pending`` looked is left out. The lock is the
    run lock's kind (``ssfer.train.run_lock``: an OS lock the kernel drops when its
    holder dies), kept beside the results, which every recording command writes
    from its own process wherever the runs train."""
    from filelock import FileLock, Timeout

    if not todo:
        return []
    folder = results_dir / LOCKS
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_error(folder, e) from e
    mine = []
    for p in todo:
        lock = FileLock(folder / f"{p.name}.lock", timeout=0)
        try:
            lock.acquire()
        except Timeout:
            say(f"{p.name}: being recorded by another `ssfer results record`; left to it")
            continue
        held.callback(lock.release)
        if not is_recorded(results_dir, p.name):
            mine.append(p)
    return mine


def _task(p: Planned, root: Path, data_roots: dict[str, str], cache_dir: str | None, code: str) -> Task | str:
    """A run as the engine's task, or the reason its config cannot be built."""
    try:
        cfg = p.resolve(root, data_roots)
    except ConfigError as e:
        return f"ConfigError: {e}"
    return Task(p.name, train_run, (cfg.to_dict(), cache_dir, list(sys.argv), code))


def pending(grid: list[Planned], results_dir: Path, only: list[str] | None = None, variant: str | None = None,
            seed_major: bool = False) -> list[Planned]:
    """The runs of ``grid`` not yet recorded, in grid order: those whose name
    matches a glob of ``only`` and, with ``variant``, of that grid group's variant
    ("" for the profile's). ``seed_major``: every method of a seed before the next
    seed, so that a machine that records a few runs records whole seeds, and each
    seed's paired comparisons come from one CPU kind."""
    chosen = [p for p in grid if (not only or any(fnmatch.fnmatch(p.name, pat) for pat in only))
              and (variant is None or p.variant == variant)]
    if not chosen and (only or variant is not None):
        # a typo in a glob or a variant would otherwise record nothing and say nothing
        asked = " and ".join(([f"--only {' '.join(only)}"] if only else [])
                             + ([f"--variant {variant!r}"] if variant is not None else []))
        variants = sorted({repr(p.variant) for p in grid})
        raise ConfigError(f"{asked}: no run of the grid matches (its variants: {', '.join(variants) or 'none'})")
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


def record_grid(grid: list[Planned], root: Path, results_dir: Path, data_roots: dict[str, str],
                only: list[str] | None = None, cache_dir: str | None = None, variant: str | None = None,
                seed_major: bool = False, engine: Engine | None = None) -> dict[str, str]:
    """Record every missing run of the grid (``pending``'s choice and order)
    through ``engine`` (default: here, one at a time; each run sets its own thread
    count in its config), committing each as it comes back; returns {name: error
    or ""} for the runs this command took on."""
    from ssfer.record import training_code_digest

    engine = engine or Engine()
    code = training_code_digest()
    done: dict[str, str] = {}
    with contextlib.ExitStack() as held:
        mine = claim(held, results_dir, pending(grid, results_dir, only, variant, seed_major), engine.say)
        by_name = {p.name: p for p in mine}
        tasks = []
        for p in mine:
            task = _task(p, root, data_roots, cache_dir, code)
            if isinstance(task, str):
                done[p.name] = task
                engine.say(f"{p.name}: {task}")
            else:
                tasks.append(task)
        for out in engine.run(tasks):
            err = f"on {out.worker}: {out.error}" if out.error else ""
            if not err:
                try:
                    commit(results_dir, out.name, out.value["files"],
                           _command(by_name[out.name], root, data_roots, out.value["data_root"]))
                except OSError as e:
                    err = f"writing its record: {e}"
            done[out.name] = err
            engine.say(f"{out.name}: {err or 'recorded'}")
    return done


def load_results(results_dir: str | Path, names: list[str] | None = None) -> dict[str, RunRecord]:
    """Every recorded run folder (or those named), checked for its five files."""
    results_dir = Path(results_dir)
    folders = sorted(d for d in results_dir.iterdir() if d.is_dir() and not d.name.startswith(".")) \
        if results_dir.is_dir() else []
    known = [d.name for d in folders]
    unknown = sorted(set(names or ()) - set(known))
    if unknown:
        raise RunFolderError(f"{results_dir}: no recorded run {unknown} (recorded: {known or 'none'})")
    out = {}
    for d in folders:
        if names and d.name not in names:
            continue
        missing = [f for f in ARTIFACTS if not (d / f).is_file()]
        if missing:
            raise RunFolderError(f"{d}: a recorded run needs {', '.join(ARTIFACTS)}; missing {', '.join(missing)} "
                                 "(record it again with `ssfer results record --only NAME`, or remove the folder)")
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
    logged = [r["step"] for r in recorded.history]
    if not any(step <= steps for step in logged):
        # a replay that compares no row would say "identical" about nothing
        first = f"the first at step {min(logged)}" if logged else "none at all"
        raise ConfigError(f"replay: --steps {steps} covers no logged row of {run_dir} (it logs every "
                          f"{cfg.train.log_every} steps, {first})"
                          + (f": use --steps {min(logged)} or more" if logged else ""))
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
