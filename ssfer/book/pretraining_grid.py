"""The grid's pretrainings (issue 32): BYOL runs named under ``pretrainings`` in
``results/grid.yaml``, recorded like runs, and the weights that a grid group's
fine-tuning runs start from (the group's ``pretraining``).

A recorded pretraining is a folder ``results/pretraining/<name>/`` holding what
may be committed: ``config.yaml``, ``metrics.jsonl`` (the loss and the
validation kNN probe), ``summary.json`` (with the weights' sha256),
``environment.json`` and ``command.txt``. Never the weights: they are derived
from the faces. They stay in the run cache of the machine that pretrained
(``<cache>/pretrain/<key>/backbone.pt``). A machine without them rebuilds them
with the recorded command, and the recorder lets a fine-tuning start only from
weights whose sha256 is the recorded one (``check_weights``), so that every run
of a family starts from one network.
"""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ssfer.errors import ConfigError, RunFolderError
from ssfer.pretrain.config import PretrainConfig
from ssfer.pretrain.record import PretrainRecord

FOLDER = "pretraining"   # results/pretraining/<name>/: beside the run folders, never read as runs
FILES = ("config.yaml", "metrics.jsonl", "summary.json", "environment.json")  # what the pretraining writes
ARTIFACTS = (*FILES, "command.txt")
# The pilot's rule, written into results/grid.yaml before the pilot ran: the final
# pretraining takes the crop floor of the pilot that ends at the higher validation
# kNN accuracy; if that pilot's curve still rose by RISE_POINTS or more over its
# last RISE_EPOCHS epochs, as many epochs as FINAL_CPU_HOURS buy at its measured
# cost (rounded down to whole probe intervals, so that the last epoch is probed),
# else twice the epoch of its best probe. The grid's pilots have "pilot" in their names.
PILOT = "pilot"
RISE_EPOCHS = 10
RISE_POINTS = 0.5
FINAL_CPU_HOURS = 8.0


def command_line(verb: str, config: str, sets: dict[str, Any]) -> str:
    """``ssfer VERB --config CONFIG --set K=V ...``, quoted for a shell: the
    command that trains a grid entry by hand (``train`` or ``pretrain``)."""
    parts = ["ssfer", verb, "--config", config]
    for k, v in sets.items():
        parts += ["--set", f"{k}={json.dumps(v) if isinstance(v, (dict, list)) else v}"]
    return shlex.join(parts)


@dataclass(frozen=True)
class PlannedPretraining:
    """One pretraining of the grid: a pretraining config plus overrides, under a name."""

    name: str
    config: str                      # a configs/*_pretrain*.yaml, relative to the repository root
    overrides: dict[str, Any] = field(default_factory=dict)

    def resolve(self, root: Path, data_roots: dict[str, str]) -> PretrainConfig:
        """Its config, the data set at ``data_roots``' path where named there."""
        cfg = PretrainConfig.from_yaml(root / self.config)
        sets = dict(self.overrides)
        if cfg.data.dataset != "synthfer" and cfg.data.dataset in data_roots:
            sets["data.root"] = data_roots[cfg.data.dataset]
        return cfg.with_overrides({**sets, "train.progress": False})

    def dataset(self, root: Path) -> str:
        """The data set its config reads."""
        return PretrainConfig.from_yaml(root / self.config).data.dataset

    def command(self, root: Path, data_roots: dict[str, str], weights: None = None) -> str:
        """The ``ssfer pretrain`` command that pretrains it by hand (from random
        weights: ``weights`` is there so that it reads as a run's ``command``)."""
        sets = dict(self.overrides)
        ds = self.dataset(root)
        if ds != "synthfer" and ds in data_roots:
            sets["data.root"] = data_roots[ds]
        return command_line("pretrain", self.config, sets)


def load_pretrainings(spec: dict, path: Path) -> dict[str, PlannedPretraining]:
    """The ``pretrainings`` of a grid file: ``[{name, config, set}]``, by name; a
    ``ConfigError`` names what is wrong and where."""
    out: dict[str, PlannedPretraining] = {}
    entries = spec.get("pretrainings") or []
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: expected a list under 'pretrainings'")
    for i, e in enumerate(entries):
        where = f"{path}: pretrainings[{i}]"
        if not isinstance(e, dict) or set(e) - {"name", "config", "set"} or not {"name", "config"} <= set(e):
            raise ConfigError(f"{where}: expected {{name, config, set}}, got {e!r}")
        name = str(e["name"])
        if name in out:
            raise ConfigError(f"{where}: the name {name!r} repeats")
        out[name] = PlannedPretraining(name, str(e["config"]), dict(e.get("set") or {}))
    return out


def cost(summary: dict, environment: dict) -> str:
    """What a pretraining took, from its record: CPU hours, threads, wall hours
    and the CPU kind (what making its weights again costs there)."""
    kind = ", ".join(str(environment[k]) for k in ("cpu_capability", "cpu_model") if environment.get(k)) \
        or "a CPU kind not recorded"
    return (f"{summary['cpu_seconds'] / 3600:.1f} CPU hours ({summary['threads']} thread(s), "
            f"{summary['seconds'] / 3600:.1f} h wall) on {kind}")


def folder(results_dir: Path, name: str) -> Path:
    return Path(results_dir) / FOLDER / name


def is_recorded(results_dir: Path, name: str) -> bool:
    return all((folder(results_dir, name) / f).is_file() for f in ARTIFACTS)


def recorded_sha256(results_dir: Path, name: str) -> str | None:
    """The sha256 of the weights the recorded pretraining ``name`` made; None when
    it is not recorded."""
    if not is_recorded(results_dir, name):
        return None
    return load_recorded(results_dir, name).summary.get("weights_sha256")


def check_weights(results_dir: Path, name: str, sha256: str) -> str:
    """"" when weights of sha256 ``sha256`` are those the recorded pretraining
    ``name`` made (or it is not recorded yet), else why no fine-tuning may start
    from them."""
    recorded = recorded_sha256(results_dir, name)
    if recorded is None or recorded == sha256:
        return ""
    return (f"pretraining {name}: the weights here have sha256 {sha256[:12]}, the recorded ones "
            f"{recorded[:12]} (other code or another CPU kind?): no fine-tuning starts from them, so that every "
            f"run of a family starts from one network; rebuild them where {FOLDER}/{name} was recorded")


def load_recorded(results_dir: str | Path, name: str) -> PretrainRecord:
    """A recorded pretraining (without weights), or a ``RunFolderError`` naming
    the missing file."""
    d = folder(Path(results_dir), name)
    missing = [f for f in ARTIFACTS if not (d / f).is_file()]
    if missing:
        raise RunFolderError(f"{d}: a recorded pretraining needs {', '.join(ARTIFACTS)}; missing "
                             f"{', '.join(missing)} (record it again with `ssfer results record --only {name}`)")
    return PretrainRecord.load(d, weights=False)


def load_all(results_dir: str | Path) -> dict[str, PretrainRecord]:
    """Every recorded pretraining of ``results_dir``, by name."""
    root = Path(results_dir) / FOLDER
    names = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")) \
        if root.is_dir() else []
    return {n: load_recorded(results_dir, n) for n in names}


@dataclass(frozen=True)
class PilotChoice:
    """What the pilot's rule gives: the pilot it follows, its crop floor and the
    final pretraining's epochs, with the figures the rule read."""

    pilot: str
    crop_floor: float
    epochs: int
    final_accuracy: float          # % validation kNN accuracy at the pilot's last probe
    rise: float                    # points gained over its last RISE_EPOCHS epochs
    cpu_seconds_per_epoch: float
    best_epoch: int

    @property
    def rose(self) -> bool:
        # rounded, so that a rise printed as 0.50 is read as 0.5
        return round(self.rise, 6) >= RISE_POINTS


def pilot_choice(pilots: dict[str, PretrainRecord]) -> PilotChoice:
    """The pilot's rule applied to the recorded ``pilots`` (in the grid's order:
    a tie in final accuracy goes to the first). A ``ValueError`` says why the rule
    cannot be read, e.g. a pilot with no probe ``RISE_EPOCHS`` before its end."""
    if not pilots:
        raise ValueError("no pilot is recorded")
    curves = {name: rec.probe_curve() for name, rec in pilots.items()}
    for name, curve in curves.items():
        if not curve:
            raise ValueError(f"pretraining {name} logged no probe")
    name = max(curves, key=lambda n: curves[n][-1]["probe_accuracy"])      # max keeps the first of equals
    rec, curve = pilots[name], curves[name]
    last = curve[-1]["epoch"]
    before = [r for r in curve if r["epoch"] <= last - RISE_EPOCHS]
    if not before:
        raise ValueError(f"pretraining {name} has no probe {RISE_EPOCHS} epochs before its last ({last}): "
                         f"the rule cannot say whether its curve still rose")
    final = 100 * curve[-1]["probe_accuracy"]
    best = max(curve, key=lambda r: r["probe_accuracy"])["epoch"]          # the earliest of equals
    per_epoch = rec.summary["cpu_seconds"] / rec.config.train.epochs
    every = rec.config.probe.every or 1
    bought = max(every, int(FINAL_CPU_HOURS * 3600 / per_epoch) // every * every)
    choice = PilotChoice(name, rec.config.views.crop_scale[0], bought, final,
                         final - 100 * before[-1]["probe_accuracy"], per_epoch, int(best))
    return choice if choice.rose else replace(choice, epochs=2 * int(best))


def pilot_reading(planned: dict[str, PlannedPretraining], recorded: dict[str, PretrainRecord], root: Path) -> str:
    """A sentence: what the pilot's rule gives once every pilot ``planned`` names is
    ``recorded``, and whether each final pretraining it names (the others; their
    configs relative to ``root``) is that."""
    names = [n for n in planned if PILOT in n]
    done = {n: recorded[n] for n in names if n in recorded}
    if not names:
        return "The grid names no pilot."
    if len(done) < len(names):
        return f"The rule is read once every pilot is recorded ({len(done)} of {len(names)} so far)."
    try:
        c = pilot_choice(done)
    except ValueError as e:
        return f"The rule cannot be read: {e}."
    others = "; ".join(f"{n}: {100 * r.probe_curve()[-1]['probe_accuracy']:.1f} %"
                       for n, r in done.items() if n != c.pilot)
    said = (f"By the rule, the final pretraining takes crop floor {c.crop_floor:g} from {c.pilot}, whose pilot ended "
            f"at {c.final_accuracy:.1f} % validation kNN accuracy" + (f" ({others})" if others else "")
            + f"; its curve rose {c.rise:+.2f} points over its last {RISE_EPOCHS} epochs, ")
    if c.rose:
        said += (f"so {c.epochs} epochs, what {FINAL_CPU_HOURS:g} CPU hours buy at its "
                 f"{c.cpu_seconds_per_epoch:.0f} CPU seconds an epoch.")
    else:
        said += (f"less than {RISE_POINTS:g} points, so {c.epochs} epochs, twice the epoch of its best "
                 f"probe ({c.best_epoch}).")
    finals = {n: pp for n, pp in planned.items() if PILOT not in n}
    if not finals:
        return said + " The grid names no final pretraining yet."
    for name, pp in finals.items():
        cfg = PretrainConfig.from_yaml(Path(root) / pp.config).with_overrides(pp.overrides)
        floor, epochs = cfg.views.crop_scale[0], cfg.train.epochs
        agrees = floor == c.crop_floor and epochs == c.epochs
        said += (f" The grid names {name}: crop floor {floor:g}, {epochs} epochs, "
                 + ("as the rule gives." if agrees else "which is not what the rule gives."))
    return said


def cost_left(pending: list[PlannedPretraining], recorded: dict[str, PretrainRecord], root: Path,
              trained: dict[str, int] | None = None) -> str:
    """A sentence: about how many CPU hours the ``pending`` pretrainings (configs
    under ``root``) still need, less the epochs ``trained`` already (by name: the
    checkpoints recording resumes). Each is priced at the mean CPU seconds an
    epoch of the ``recorded`` pretrainings of its data set that ran on as many
    threads, else of all those of its data set (said so: CPU seconds an epoch
    grow with the threads); one with no recorded pretraining of its data set is
    named as not priced. "" when nothing is pending."""
    if not pending:
        return ""
    trained = trained or {}
    paces = [(rec.config.data.dataset, rec.summary["cpu_seconds"] / rec.config.train.epochs,
              int(rec.summary.get("threads") or 0)) for rec in recorded.values()]
    total, each, unpriced = 0.0, [], []
    for pp in pending:
        cfg = PretrainConfig.from_yaml(Path(root) / pp.config).with_overrides(pp.overrides)
        threads = cfg.train.threads
        mine = [(pace, t) for ds, pace, t in paces if ds == cfg.data.dataset]
        if not mine:
            unpriced.append(pp.name)
            continue
        alike = [pace for pace, t in mine if threads and t == threads]
        per_epoch = sum(alike or [pace for pace, _ in mine]) / len(alike or mine)
        on = (f"the pace recorded on {threads} thread(s)" if alike else
              "the pace recorded on " + " and ".join(sorted({f"{t} thread(s)" for _, t in mine}))
              + (f"; it runs on {threads}, and CPU seconds an epoch grow with the threads" if threads else ""))
        left = max(0, cfg.train.epochs - trained.get(pp.name, 0))
        total += left * per_epoch
        each.append(f"{pp.name}: {left} of {cfg.train.epochs} epochs at {per_epoch:.0f} CPU seconds an epoch, {on}")
    said = (f"about {total / 3600:.1f} CPU hours of pretraining left ({'; '.join(each)})" if each
            else "no estimate of the CPU hours left to pretrain")
    if unpriced:
        said += f"; not priced, with no recorded pretraining of their data set: {', '.join(unpriced)}"
    return said
