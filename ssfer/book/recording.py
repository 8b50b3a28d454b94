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
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ssfer.book import pretraining_grid
from ssfer.book.engine import Engine, Task
from ssfer.book.pretraining_grid import PlannedPretraining, command_line
from ssfer.config import Config, ConfigError, TrainConfig
from ssfer.data.errors import DataError
from ssfer.errors import RunFolderError
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
    pretraining: str = ""            # the grid's pretraining whose weights it starts from; "" from scratch

    def resolve(self, root: Path, data_roots: dict[str, str], weights: str | None = None) -> Config:
        """The run's config, its data set at ``data_roots``' path; a data set not
        named there keeps its config's path, for the worker to find or refuse
        (``data_here``). A run that starts from a pretraining needs its
        ``weights`` (the file ``model.pretrained_path`` loads)."""
        cfg = Config.from_yaml(root / self.config).with_overrides(self.overrides)
        dataset = cfg.data.dataset
        if dataset != "synthfer" and dataset in data_roots:
            cfg = cfg.with_overrides({"data.root": data_roots[dataset]})
        if self.pretraining:
            if weights is None:
                raise ConfigError(f"{self.name} starts from the pretraining {self.pretraining!r}: it needs its weights")
            cfg = cfg.with_overrides({"model.pretrained_path": str(weights)})
        return cfg.with_overrides({"train.progress": False})

    def dataset(self, root: Path) -> str:
        """The data set its config reads."""
        return Config.from_yaml(root / self.config).data.dataset

    def command(self, root: Path, data_roots: dict[str, str], weights: str | None = None) -> str:
        """The ``ssfer train`` command that trains this run by hand."""
        sets = dict(self.overrides)
        ds = self.dataset(root)
        if ds in data_roots:
            sets["data.root"] = data_roots[ds]
        if self.pretraining:
            sets["model.pretrained_path"] = weights or f"<the weights of {pretraining_grid.FOLDER}/{self.pretraining}>"
        return command_line("train", self.config, sets)


def load_grid(path: str | Path) -> list[Planned]:
    """``grid.yaml``: ``{groups: [{config, seeds, algorithms, name, set, variant,
    pretraining}]}`` expanded to one ``Planned`` per (algorithm, seed); ``name``
    is a format string over ``algorithm`` and ``seed``; ``variant`` (optional)
    names a control group, whose runs the tables keep apart from the profile's;
    ``pretraining`` (optional) names an entry of the grid's ``pretrainings``
    whose weights the group's runs start from (such a group needs a variant, so
    that its runs never mix with those from scratch). Names must be unique."""
    return read_grid(path)[0]


def read_grid(path: str | Path) -> tuple[list[Planned], dict[str, PlannedPretraining]]:
    """``load_grid``'s runs and the grid's pretrainings by name
    (``pretraining_grid.load_pretrainings``)."""
    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: cannot read the grid: {e}") from e
    pretrainings = pretraining_grid.load_pretrainings(spec, path)
    groups = spec.get("groups")
    if not isinstance(groups, list):
        raise ConfigError(f"{path}: expected a list under 'groups'")
    out: list[Planned] = []
    for i, g in enumerate(groups):
        where = f"{path}: groups[{i}]"
        unknown = set(g) - {"config", "seeds", "algorithms", "name", "set", "variant", "pretraining"}
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}")
        start = str(g.get("pretraining") or "")
        if start and start not in pretrainings:
            raise ConfigError(f"{where}: pretraining {start!r} is not among the grid's pretrainings "
                              f"({', '.join(pretrainings) or 'none'})")
        if start and not g.get("variant"):
            raise ConfigError(f"{where}: a group that starts from a pretraining needs a variant, so that its runs "
                              "never mix with those from scratch in a table")
        try:
            config, name = str(g["config"]), str(g["name"])
            seeds, algorithms = list(g["seeds"]), list(g["algorithms"])
        except KeyError as e:
            raise ConfigError(f"{where}: missing {e}") from None
        for algorithm in algorithms:
            for seed in seeds:
                overrides = {"algo.name": algorithm, "split.seed": seed, "train.seed": seed, **(g.get("set") or {})}
                out.append(Planned(name.format(algorithm=algorithm, seed=seed), config, overrides,
                                   str(g.get("variant") or ""), start))
    names = [p.name for p in out] + list(pretrainings)
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"{path}: run names repeat: {dup}")
    return out, pretrainings


def is_recorded(results_dir: Path, name: str) -> bool:
    return all((results_dir / name / f).is_file() for f in ARTIFACTS)


def data_here(cfg, where: str):
    """``cfg`` (a run's ``Config`` or a ``PretrainConfig``) with its data set's folder as this worker sees it: under
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


def pretrain_run(cfg: dict, cache_dir: str | None, argv: list[str], code: str) -> dict:
    """A worker's part of a grid's pretraining: pretrain ``cfg`` (or load it from
    this worker's run cache) and return its small files as data, where its
    weights lie on this worker and their sha256: ``{"files", "weights", "sha256",
    "data_root"}``."""
    from ssfer.book.engine import check_worker, here
    from ssfer.pretrain.config import PretrainConfig
    from ssfer.pretrain.record import pretraining_code_digest
    from ssfer.pretrain.run import pretrain

    where = here()
    check_worker(where, "pretrains", pretraining_code_digest(), code)
    config = data_here(PretrainConfig.from_dict(cfg), where)
    with _argv(argv):
        rec = pretrain(config, cache_dir=cache_dir)
    return {"files": {f: (rec.run_dir / f).read_bytes() for f in pretraining_grid.FILES},
            "weights": str(rec.weights), "sha256": rec.summary["weights_sha256"],
            "data_root": config.data.root if config.data.dataset != "synthfer" else None}


def commit(results_dir: Path, name: str, files: dict[str, bytes], command: str) -> Path:
    """Write a run's files (or a pretraining's) and ``command.txt`` into
    ``results_dir/<name>``: into a staging folder first, renamed into place, so
    the folder appears complete or not at all (an interrupted commit leaves only
    the staging folder, which the next one clears)."""
    dest = results_dir / name
    staging = results_dir / f".{name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    for f, data in files.items():
        atomic_write_bytes(staging / f, data)
    atomic_write_text(staging / "command.txt", command)
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)
    return dest


def _command(planned: Planned | PlannedPretraining, root: Path, data_roots: dict[str, str], used_root: str | None,
             weights: str | None = None, starts: PlannedPretraining | None = None, took: str = "",
             starts_took: str = "") -> str:
    """``command.txt``: the command that makes the record again by hand; ``took``:
    what a pretraining took (``pretraining_grid.cost``), ``starts_took`` the same
    for the pretraining a run starts from, so that its reader knows what making
    the weights again costs."""
    roots = dict(data_roots)
    if used_root is not None:  # where the worker found the data: what the run's config says
        roots[planned.dataset(root)] = used_root
    head = "# recorded by: ssfer results record --only " + planned.name + "\n"
    if took:
        head += f"# took {took}\n"
    if starts is not None:  # how the weights it starts from are made again, where they are not
        head += (f"# starts from the weights of {pretraining_grid.FOLDER}/{starts.name}, made by:\n"
                 f"#   {starts.command(root, roots)}\n" + (f"#   which took {starts_took}\n" if starts_took else ""))
    return head + planned.command(root, roots, weights) + "\n"


def _took(files: dict[str, bytes]) -> str:
    """``pretraining_grid.cost`` of a pretraining's files as they came back."""
    return pretraining_grid.cost(json.loads(files["summary.json"]), json.loads(files["environment.json"]))


def _recorded_took(results_dir: Path, name: str) -> str:
    """``pretraining_grid.cost`` of the recorded pretraining ``name`` ("" when it is not)."""
    if not pretraining_grid.is_recorded(results_dir, name):
        return ""
    rec = pretraining_grid.load_recorded(results_dir, name)
    return pretraining_grid.cost(rec.summary, rec.environment)


def record(planned: Planned, root: Path, results_dir: Path, data_roots: dict[str, str],
           cache_dir: str | None = None) -> Path:
    """Train (or load from the cache) one planned run here and commit its record
    into ``results_dir/<name>``; the folder appears complete or not at all."""
    from ssfer.record import training_code_digest

    out = train_run(planned.resolve(root, data_roots).to_dict(), cache_dir, list(sys.argv), training_code_digest())
    return commit(results_dir, planned.name, out["files"], _command(planned, root, data_roots, out["data_root"]))


def _lock(held: contextlib.ExitStack, results_dir: Path, name: str) -> bool:
    """Take ``name``'s recording lock on ``held``; False when another command holds it."""
    from filelock import FileLock, Timeout

    folder = results_dir / LOCKS
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_error(folder, e) from e
    lock = FileLock(folder / f"{name}.lock", timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return False
    held.callback(lock.release)
    return True


def claim(held: contextlib.ExitStack, results_dir: Path, todo: list[Planned], say) -> list[Planned]:
    """The runs of ``todo`` this command records, each one's lock taken and held on
    ``held``: a run another command holds is left to it (``say`` tells), one
    another command recorded since ``pending`` looked is left out. The lock is the
    run lock's kind (``ssfer.train.run_lock``: an OS lock the kernel drops when its
    holder dies), kept beside the results, which every recording command writes
    from its own process wherever the runs train."""
    mine = []
    for p in todo:
        if not _lock(held, results_dir, p.name):
            say(f"{p.name}: being recorded by another `ssfer results record`; left to it")
            continue
        if not is_recorded(results_dir, p.name):
            mine.append(p)
    return mine


def _task(p: Planned, root: Path, data_roots: dict[str, str], cache_dir: str | None, code: str,
          weights: str | None = None) -> Task | str:
    """A run as the engine's task, or the reason its config cannot be built."""
    try:
        cfg = p.resolve(root, data_roots, weights)
    except ConfigError as e:
        return f"ConfigError: {e}"
    return Task(p.name, train_run, (cfg.to_dict(), cache_dir, list(sys.argv), code))


def _matches(name: str, only: list[str] | None) -> bool:
    return not only or any(fnmatch.fnmatch(name, pat) for pat in only)


def pending(grid: list[Planned], results_dir: Path, only: list[str] | None = None, variant: str | None = None,
            seed_major: bool = False, also: list[str] | tuple[str, ...] = (),
            then: list[str] | tuple[str, ...] = ()) -> list[Planned]:
    """The runs of ``grid`` not yet recorded, in grid order: those whose name
    matches a glob of ``only`` and, with ``variant``, of that grid group's variant
    ("" for the profile's). ``seed_major``: every method of a seed before the next
    seed, so that a machine that records a few runs records whole seeds, and each
    seed's paired comparisons come from one CPU kind. ``also``: other names of
    the grid (its pretrainings) that ``only`` may choose instead. ``then``: globs
    of later stages, each stage's runs after the earlier stages' (``only`` is the
    first), each in the order above: one command records stages in turn, and
    the engine keeps every core busy across their boundaries."""
    if then and not only:
        raise ConfigError("--then GLOB orders stages after those --only chooses: give --only as well")
    stages = [only or []] + [[g] for g in then]

    def stage(p: Planned) -> int | None:
        return next((i for i, globs in enumerate(stages) if _matches(p.name, globs)), None)

    chosen = [p for p in grid if stage(p) is not None and (variant is None or p.variant == variant)]
    if not chosen and not (only and variant is None and any(_matches(n, only) for n in also)) \
            and (only or variant is not None):
        # a typo in a glob or a variant would otherwise record nothing and say nothing
        asked = " and ".join(([f"--only {' '.join(only)}"] if only else [])
                             + ([f"--variant {variant!r}"] if variant is not None else []))
        variants = sorted({repr(p.variant) for p in grid})
        raise ConfigError(f"{asked}: no run of the grid matches (its variants: {', '.join(variants) or 'none'})")
    for glob in then:
        if not any(_matches(p.name, [glob]) for p in grid):
            raise ConfigError(f"--then {glob}: no run of the grid matches")
    todo = [p for p in chosen if not is_recorded(results_dir, p.name)]
    # sorted is stable: grid order within a stage (and, seed-major, within a seed)
    todo.sort(key=lambda p: (stage(p), p.overrides.get("split.seed", 0) if seed_major else 0))
    return todo


def pretrainings_to_run(pretrainings: dict[str, PlannedPretraining], runs: list[Planned], results_dir: Path,
                        only: list[str] | None = None, variant: str | None = None) -> list[PlannedPretraining]:
    """The pretrainings a recording command runs first, in grid order: those not
    yet recorded that ``only`` chooses (none with ``variant``, which chooses runs),
    and every one that a run of ``runs`` starts from, recorded or not (its weights
    must be in this cache: loaded there, or made again and checked against the
    record's sha256)."""
    needed = {p.pretraining for p in runs if p.pretraining}
    return [pp for name, pp in pretrainings.items()
            if name in needed or (variant is None and _matches(name, only)
                                  and not pretraining_grid.is_recorded(results_dir, name))]


def _source(env: dict) -> dict:
    """Where a run came from, short: its code fingerprint, commit and CPU kind."""
    return {"code": (env.get("code_fingerprint") or "?")[:8], "commit": (env.get("git_commit") or "?")[:7],
            "CPU kind": cpu_kind(env)}


def group_key(p: Planned) -> tuple:
    """What the runs of one grid group share whatever their method and seed: its
    config, variant, pretraining and every other override."""
    rest = {k: v for k, v in p.overrides.items() if k not in ("algo.name", "train.seed", "split.seed")}
    return p.config, p.variant, p.pretraining, json.dumps(rest, sort_keys=True, default=str)


def grid_root(grid: str | Path, planned: list[Planned]) -> Path:
    """The folder the grid's config paths are relative to: the nearest one above the
    grid file (links followed) that holds every config it names; the repository
    root for ``results/grid.yaml``, wherever it is read from."""
    configs = sorted({p.config for p in planned})
    for folder in Path(grid).resolve().parents:
        if all((folder / c).is_file() for c in configs):
            return folder
    raise ConfigError(f"{grid}: no folder above it holds the configs it names ({', '.join(configs[:3])}, ...)")


def planned_steps(p: Planned, root: Path, _configs: dict | None = None) -> int:
    """The training steps ``p`` is planned to take: its override, else its
    config's, else the default. Reads only the YAML (``_configs`` caches it by path)."""
    if "train.steps" in p.overrides:
        return int(p.overrides["train.steps"])
    configs = {} if _configs is None else _configs
    if p.config not in configs:
        path = root / p.config
        try:
            configs[p.config] = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"{path}: cannot read the config: {e}") from e
    steps = (configs[p.config].get("train") or {}).get("steps")
    return int(steps) if steps is not None else TrainConfig().steps


def cost_left(grid: list[Planned], results_dir: Path, names: list[str], root: Path,
              trained: dict[str, int] | None = None) -> dict:
    """The training seconds the runs ``names`` of ``grid`` are likely to take: each
    at the mean recorded seconds per step (``train_seconds / steps`` of each
    recorded run's summary.json) of its method in its grid group, else of its
    method anywhere in the grid, times its planned steps less those ``trained``
    already (a checkpoint recording resumes, by name). Returns the total
    seconds, the same at the fastest and at the slowest of those recorded paces
    (``fastest``, ``slowest``), the runs costed and those no recorded run of their
    method can cost. An estimate from runs that may have shared their cores, on
    machines whose speed varies, not a promise: hence the range. Reads
    summaries only, so that ``status`` stays quick; raises ``RunFolderError``
    naming a summary it cannot read."""
    by_group: dict[tuple, list[float]] = {}
    by_method: dict[str, list[float]] = {}
    for p in grid:
        if not is_recorded(results_dir, p.name):
            continue
        path = results_dir / p.name / "summary.json"
        try:
            s = json.loads(path.read_text())
            per_step = float(s["train_seconds"]) / int(s["steps"])
        except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError) as e:
            raise RunFolderError(f"{path}: cannot read its train_seconds and steps ({type(e).__name__}: {e})") from None
        method = p.overrides["algo.name"]
        by_group.setdefault((group_key(p), method), []).append(per_step)
        by_method.setdefault(method, []).append(per_step)
    wanted, configs = set(names), {}
    seconds, fastest, slowest, costed, unknown = 0.0, 0.0, 0.0, 0, []
    for p in grid:
        if p.name not in wanted:
            continue
        method = p.overrides["algo.name"]
        known = by_group.get((group_key(p), method)) or by_method.get(method)
        if not known:
            unknown.append(p.name)
            continue
        steps = max(planned_steps(p, root, configs) - (trained or {}).get(p.name, 0), 0)
        seconds += sum(known) / len(known) * steps
        fastest, slowest = fastest + min(known) * steps, slowest + max(known) * steps
        costed += 1
    return {"seconds": seconds, "fastest": fastest, "slowest": slowest, "costed": costed, "not costed": unknown}


def _seed_key(p: Planned) -> tuple:
    """The pairing unit: ``p``'s grid group and labeled-split seed."""
    return group_key(p), p.overrides.get("split.seed", 0)


def open_seeds(grid: list[Planned], results_dir: Path, variant: str | None = None) -> list[dict]:
    """The seeds of ``grid`` (of ``variant``'s groups) that are part recorded: per
    grid group and seed with runs both recorded and still to record, the CPU kinds
    and code fingerprints (short) its recorded runs came from and the runs left.
    Completing such a seed on another kind, or with other code, mixes them within
    its paired comparisons."""
    seeds: dict[tuple, list[Planned]] = {}
    for p in grid:
        if variant is None or p.variant == variant:
            seeds.setdefault(_seed_key(p), []).append(p)
    out = []
    for (_, seed), runs in seeds.items():
        var = runs[0].variant
        done = [p for p in runs if is_recorded(results_dir, p.name)]
        if not done or len(done) == len(runs):
            continue
        sources = [_source(json.loads((results_dir / p.name / "environment.json").read_text())) for p in done]
        out.append({"seed": seed, "variant": var, "recorded": [p.name for p in done],
                    "left": [p.name for p in runs if p not in done],
                    **{key: sorted({s[col] for s in sources})
                       for key, col in (("kinds", "CPU kind"), ("codes", "code"), ("commits", "commit"))}})
    return out


def unpaired_runs(seed: dict, results_dir: Path, here: str, code: str) -> list[str]:
    """The recorded runs of the part-recorded ``seed`` (an ``open_seeds`` entry) that
    a run trained on CPU kind ``here`` with training code ``code`` (short) is not
    known to pair with: each came from another kind or code, and no replay of that
    recording on this kind and code was logged identical (``replays.jsonl``). An
    empty list: this machine completes the seed alike."""
    vouched = {(r["run"], r.get("recorded code"), r.get("recorded commit"), r.get("recorded CPU kind"))
               for r in load_replays(results_dir)
               if r.get("identical") and r.get("replayed CPU kind") == here and r.get("replayed code") == code}
    out = []
    for name in seed["recorded"]:
        src = _source(json.loads((Path(results_dir) / name / "environment.json").read_text()))
        if (src["CPU kind"], src["code"]) != (here, code) and \
                (name, src["code"], src["commit"], src["CPU kind"]) not in vouched:
            out.append(name)
    return out


def seed_mates(grid: list[Planned], p: Planned) -> list[Planned]:
    """The other runs of ``p``'s grid group at its seed: those it is paired with."""
    key = _seed_key(p)
    return [q for q in grid if q.name != p.name and _seed_key(q) == key]


def mixes_seed(grid: list[Planned], results_dir: Path, p: Planned, env: dict) -> list[str]:
    """The recorded runs of ``p``'s seed that ``p``, trained where ``env`` (its
    ``environment.json``) says, is not known to pair with (``unpaired_runs``).
    A worker of a remote cluster may be of another CPU kind than the machine
    that checked the seed before training, so each run is checked again as it
    comes back, against the runs committed by then."""
    src = _source(env)
    recorded = [q.name for q in seed_mates(grid, p) if is_recorded(results_dir, q.name)]
    return unpaired_runs({"recorded": recorded}, results_dir, src["CPU kind"], src["code"]) if recorded else []


def _mixing_error(results_dir: Path, p: Planned, files: dict[str, bytes], grid: list[Planned], worker: str) -> str:
    """Why the run ``p`` that came back as ``files`` from ``worker`` is not
    committed beside its seed's recorded runs ("" when it pairs with them)."""
    env = json.loads(files["environment.json"])
    unpaired = mixes_seed(grid, results_dir, p, env)
    if not unpaired:
        return ""
    src = _source(env)
    return (f"trained on {worker or 'a worker'} ({src['CPU kind']}, code {src['code']}), but its seed's recorded "
            f"runs {', '.join(unpaired)} came from another CPU kind or code: not recorded, so as not to pair them "
            f"(it stays in that worker's run cache). Record it on their kind, or pass --mix-seeds to pair them anyway")


def _pretrain_first(todo: list[PlannedPretraining], held: contextlib.ExitStack, root: Path, results_dir: Path,
                    data_roots: dict[str, str], cache_dir: str | None, engine: Engine,
                    done: dict[str, str]) -> dict[str, str]:
    """Run the pretrainings ``todo`` through ``engine`` (or load them from the
    workers' caches), record those not yet in ``results_dir/pretraining/``, and
    check the weights of those recorded; returns {name: weights path} of those
    fine-tuning may start from, and puts each failure (and each recording) in ``done``."""
    from ssfer.pretrain.record import pretraining_code_digest

    code, into = pretraining_code_digest(), results_dir / pretraining_grid.FOLDER
    by_name, tasks, weights = {pp.name: pp for pp in todo}, [], {}
    mine = set()
    for pp in todo:
        if not pretraining_grid.is_recorded(results_dir, pp.name):
            if not _lock(held, results_dir, f"{pretraining_grid.FOLDER}.{pp.name}"):
                # its weights would be made twice, or on another machine's cache
                engine.say(f"{pp.name}: being recorded by another `ssfer results record`; left to it")
                continue
            mine.add(pp.name)
        try:
            tasks.append(Task(pp.name, pretrain_run, (pp.resolve(root, data_roots).to_dict(), cache_dir,
                                                     list(sys.argv), code)))
        except ConfigError as e:
            done[pp.name] = f"ConfigError: {e}"
            engine.say(f"{pp.name}: {done[pp.name]}")
    for out in engine.run(tasks):
        err = f"on {out.worker}: {out.error}" if out.error else \
            pretraining_grid.check_weights(results_dir, out.name, out.value["sha256"])
        if not err and out.name in mine:
            try:
                commit(into, out.name, out.value["files"],
                       _command(by_name[out.name], root, data_roots, out.value["data_root"],
                                took=_took(out.value["files"])))
            except OSError as e:
                err = f"writing its record: {e}"
            done[out.name] = err
            engine.say(f"{out.name}: {err or 'recorded'}")
        elif err:
            done[out.name] = err
            engine.say(f"{out.name}: {err}")
        if not err:
            weights[out.name] = out.value["weights"]
    return weights


def record_grid(grid: list[Planned], root: Path, results_dir: Path, data_roots: dict[str, str],
                only: list[str] | None = None, cache_dir: str | None = None, variant: str | None = None,
                seed_major: bool = False, engine: Engine | None = None,
                pretrainings: dict[str, PlannedPretraining] | None = None,
                then: list[str] | tuple[str, ...] = (), mix_seeds: bool = False) -> dict[str, str]:
    """Record every missing run of the grid (``pending``'s choice and order)
    through ``engine`` (default: here, one at a time; each run sets its own thread
    count in its config), committing each as it comes back; returns {name: error
    or ""} for the runs (and pretrainings) this command took on. The grid's
    ``pretrainings`` that ``pretrainings_to_run`` names go first: a run that
    starts from one trains only once its weights are here and are the recorded ones.
    A run that came back from another CPU kind or code than its seed's recorded
    runs is not committed (``mixes_seed``) unless ``mix_seeds``."""
    from ssfer.record import training_code_digest

    engine = engine or Engine()
    pretrainings = pretrainings or {}
    code = training_code_digest()
    done: dict[str, str] = {}
    with contextlib.ExitStack() as held:
        mine = claim(held, results_dir, pending(grid, results_dir, only, variant, seed_major, list(pretrainings), then),
                     engine.say)
        first = pretrainings_to_run(pretrainings, mine, results_dir, only, variant)
        weights = _pretrain_first(first, held, root, results_dir, data_roots, cache_dir, engine, done) if first else {}
        by_name = {p.name: p for p in mine}
        # read once per pretraining, not once per run that starts from it
        took = {name: _recorded_took(results_dir, name) for name in weights}
        tasks = []
        for p in mine:
            if p.pretraining and p.pretraining not in weights:
                why = done.get(p.pretraining) or "it is being recorded by another command"
                done[p.name] = f"its pretraining {p.pretraining} has no weights here: {why}"
                engine.say(f"{p.name}: {done[p.name]}")
                continue
            task = _task(p, root, data_roots, cache_dir, code, weights.get(p.pretraining))
            if isinstance(task, str):
                done[p.name] = task
                engine.say(f"{p.name}: {task}")
            else:
                tasks.append(task)
        for out in engine.run(tasks):
            err = f"on {out.worker}: {out.error}" if out.error else ""
            p = by_name[out.name]
            if not err and not mix_seeds:
                err = _mixing_error(results_dir, p, out.value["files"], grid, out.worker)
            if not err:
                try:
                    commit(results_dir, out.name, out.value["files"],
                           _command(p, root, data_roots, out.value["data_root"], weights.get(p.pretraining),
                                    pretrainings.get(p.pretraining),
                                    starts_took=took.get(p.pretraining, "")))
                except OSError as e:
                    err = f"writing its record: {e}"
            done[out.name] = err
            engine.say(f"{out.name}: {err or 'recorded'}")
    return done


def load_results(results_dir: str | Path, names: list[str] | None = None) -> dict[str, RunRecord]:
    """Every recorded run folder (or those named), checked for its five files."""
    results_dir = Path(results_dir)
    # results/pretraining/ holds the grid's pretrainings (``pretraining_grid``), not runs
    folders = sorted(d for d in results_dir.iterdir() if d.is_dir() and not d.name.startswith(".")
                     and d.name != pretraining_grid.FOLDER) if results_dir.is_dir() else []
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
