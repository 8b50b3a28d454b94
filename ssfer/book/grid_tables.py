"""The recorded real-face runs as tables: one row per run, per class, per
comparison, and the seed plan of the planned families.

The runs come from ``ssfer.book.recording`` (the grid and its records); paired
comparisons and their words from ``ssfer.book.verdicts``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ssfer.algo.compose import RECIPES, display_name
from ssfer.book.recording import Planned, _source
from ssfer.book.tables import recall_table, run_scores, select
from ssfer.book.verdicts import (ALPHA, MARGIN, MIN_SEEDS, Comparison, compare, compare_rows, comparison_values,
                                 family_verdict, interval, seeds_for_half_width)
from ssfer.config import Config, ConfigError
from ssfer.record import RunRecord
from ssfer.stats import holm

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
# the runs, each read against 0 and against verdicts.MARGIN; every other interval of
# the chapter is exploration.
PRIMARY = {"data set": "FERPlus", "budget": "10 % labeled", "variant": "no label smoothing"}
PRIMARY_NAME = ", ".join(PRIMARY.values())   # "FERPlus, 10 % labeled, no label smoothing"
PLANNED = (("DTA+SNL", "FixMatch"), ("DTA", "FlexMatch"), ("DTA+SNL", "DTA"),
           ("FixMatch", "supervised"), ("DTA+SNL", "supervised"))
MAX_SEEDS = 20         # the grid grows to at most this many seeds (20 for the contested comparison, issue 31)
MIN_TEST_FACES = 50    # a class with fewer test faces gets its counts, not a verdict


def budget_of(cfg: Config) -> str:
    """The label budget of a run, as the results tables name it."""
    s = cfg.split
    return {"per_class": f"{s.n_per_class} per class", "adacm_rafdb": f"{s.total} labels",
            "fraction": f"{100 * s.fraction:g} % labeled", "all": "all labels"}[s.protocol]


def run_keys(records: dict[str, RunRecord], grid: list[Planned] | None = None) -> pd.DataFrame:
    """What names a recorded run in every table: run, data set, budget, method,
    seed and variant (the grid group's control name, "" for the profile and for
    runs not in ``grid``), one row per run."""
    variant = {p.name: p.variant for p in grid or ()}
    return pd.DataFrame([{"run": name, "data set": DATASET_NAMES.get(r.config.data.dataset, r.config.data.dataset),
                          "budget": budget_of(r.config), "method": METHODS.get(r.config.algo.name, r.config.algo.name),
                          "seed": r.config.split.seed, "variant": variant.get(name, "")}
                         for name, r in records.items()], columns=list(RUN_KEYS))


RUN_KEYS = ("run", "data set", "budget", "method", "seed", "variant")


def results_table(records: dict[str, RunRecord], grid: list[Planned] | None = None) -> pd.DataFrame:
    """One row per recorded run: its keys (``run_keys``), the test scores in % as
    published (``tables.run_scores``) and leak-free, validation accuracy, the
    commonest-class rate of the test split (what always answering its largest
    class scores), steps, minutes and device."""
    rows = []
    for key, (name, rec) in zip(run_keys(records, grid).to_dict("records"), records.items()):
        s = rec.summary
        cm = np.asarray(s["confusion"])
        lf = s.get("test_leak_free") or {}
        rows.append({
            **key, **run_scores(s),
            "leak-free accuracy (%)": 100 * lf["accuracy"] if lf else float("nan"),
            "leak-free mean class accuracy (%)": 100 * lf["mean_class_accuracy"] if lf else float("nan"),
            "val accuracy (%)": 100 * s["val"]["accuracy"] if "val" in s else float("nan"),
            "commonest class (%)": 100 * cm.sum(1).max() / cm.sum(),
            "steps": s["steps"], "train minutes": s["train_seconds"] / 60, "device": s["device"],
        })
    # an empty results folder is a table with no row, not one without columns: every
    # reader (plan, family, the chapter) then says "not recorded yet" instead of failing
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


RESULT_COLUMNS = [*RUN_KEYS, "accuracy (%)", "mean class accuracy (%)", "macro F1 (%)", "ECE", "labeled",
                  "unlabeled", "leak-free accuracy (%)", "leak-free mean class accuracy (%)", "val accuracy (%)",
                  "commonest class (%)", "steps", "train minutes", "device"]


def mean_sd(table, metrics=("accuracy (%)", "mean class accuracy (%)", "leak-free accuracy (%)"),
            by=("data set", "budget", "method")):
    """Mean ± sd over seeds of each metric, one row per (data set, budget, method),
    with the number of seeds and the mean training minutes."""
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
    rows = select(table, **where)
    have = set(rows["method"])
    pairs = [p for p in KEY_COMPARISONS if set(p) <= have]
    pairs += [(m, "supervised") for m in METHODS.values() if m != "supervised" and {m, "supervised"} <= have]
    return [compare(rows, a, b, metric) for a, b in pairs]


def pair_values(name: str, table, a: str, b: str, metric: str = "accuracy (%)", by: str = "method",
                spec: str = "+.1f", **where) -> dict:
    """What the prose cites of the paired comparison of ``a`` and ``b`` (values of
    column ``by``) in the runs matching ``where`` (``verdicts.comparison_values``'
    keys, the numbers formatted with ``spec``); when either has no recorded run
    yet, the same keys say so."""
    rows = select(table, **where)
    if not {a, b} <= set(rows[by]):
        return {f"{name}_mean": "—", f"{name}_low": "—", f"{name}_high": "—", f"{name}_wins": 0, f"{name}_n": 0,
                f"{name}_verdict": "not recorded yet: no claim"}
    return comparison_values(name, compare(rows, a, b, metric, by=by), spec)


def planned_table(grid: list[Planned], root: Path) -> pd.DataFrame:
    """Every planned run of the grid under the keys a recorded run carries
    (``RUN_KEYS``), read from their configs (each file once); ``root``: the folder
    the grid's config paths are relative to."""
    base = {c: Config.from_yaml(Path(root) / c) for c in dict.fromkeys(p.config for p in grid)}
    rows = []
    for p in grid:
        cfg = base[p.config].with_overrides(p.overrides)
        rows.append({"run": p.name, "data set": DATASET_NAMES.get(cfg.data.dataset, cfg.data.dataset),
                     "budget": budget_of(cfg), "method": METHODS.get(cfg.algo.name, cfg.algo.name),
                     "seed": cfg.split.seed, "variant": p.variant})
    return pd.DataFrame(rows, columns=list(RUN_KEYS))


def primary_planned(grid: list[Planned], keys: pd.DataFrame) -> list[Planned]:
    """The planned runs of the primary grid (``PRIMARY``: data set, budget and
    variant); ``keys``: the grid's ``planned_table``."""
    names = set(select(keys, **PRIMARY)["run"])
    return [p for p in grid if p.name in names]


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
    seeds needed (``verdicts.seeds_for_half_width``; capped at ``max_seeds``), how
    many more that is, and the CPU hours of those runs from the recorded
    ``train_seconds`` (the mean per run of each of its two methods)."""
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
    """The grid's whole plan: each method needs the most seeds any of its
    comparisons in ``plan_frame`` needs (a comparison not measured yet: the most
    any comparison needs), so a method that only some comparisons hold at more
    seeds is not planned up to them. Returns the seeds recorded for every method,
    the most seeds any comparison needs, and the runs still to record with their
    CPU hours (mean recorded ``train_seconds`` per run of each method)."""
    rows = select(table, **where)
    pairs = {c: tuple(c.split(" − ")) for c in plan_frame["comparison"]}
    methods = list(dict.fromkeys(m for pair in pairs.values() for m in pair))
    per_method = {m: set(rows.loc[rows["method"] == m, "seed"]) for m in methods}
    complete = set.intersection(*per_method.values()) if per_method else set()
    needed = {c: int(v) for c, v in zip(plan_frame["comparison"], plan_frame["seeds needed"])
              if isinstance(v, (int, float)) and math.isfinite(v)}
    most = max(needed.values(), default=0)
    need = {m: max(needed.get(c, most) for c, pair in pairs.items() if m in pair) for m in methods}
    seconds = seconds_per_run(rows)
    todo = {m: max(0, need[m] - len(per_method[m])) for m in methods}
    return {"complete seeds": len(complete), "seeds needed": most, "runs to record": sum(todo.values()),
            "CPU hours": sum(n * seconds[m] for m, n in todo.items() if m in seconds) / 3600,
            "not timed": [m for m, n in todo.items() if n and m not in seconds]}


def class_table(records: dict[str, RunRecord], grid: list[Planned] | None = None) -> pd.DataFrame:
    """Per-class test recall of every run, long: the run's keys (``run_keys``),
    ``class``, ``recall (%)`` and ``test faces`` (``tables.recall_table``)."""
    recall = recall_table(records, keys=("run",))
    return run_keys(records, grid).merge(recall, on="run", how="right", validate="one_to_many")


def class_comparisons(classes, family=PLANNED, classes_of=None, min_faces: int = MIN_TEST_FACES, **where):
    """The planned family's paired difference of each class's recall (points),
    over the runs of ``classes`` (a ``class_table``) matching ``where``; one row per
    comparison and class, with the class's test faces. A class with fewer than
    ``min_faces`` test faces gets its interval but no verdict ("too few test
    faces"): its recall moves in steps of several points."""
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
    rows = []
    for name, rec in records.items():
        env = rec.environment or {}
        rows.append({"run": name, **_source(env), "threads": env.get("cpu_threads")})
    return pd.DataFrame(rows, columns=["run", "code", "commit", "CPU kind", "threads"])


# ------------------------------------------------------------------ the planned families (grid.yaml)
@dataclass(frozen=True)
class Interaction:
    """A difference of differences, paired by seed: (a − b) in regime ``first``
    minus (a − b) in regime ``second`` (e.g. DTA+SNL − FixMatch pretrained minus
    DTA+SNL − FixMatch from scratch). Each regime is column values with the
    family's ``where``; ``names`` say how the tables call the two regimes."""

    a: str
    b: str
    first: dict[str, Any]
    second: dict[str, Any]
    names: tuple[str, str]

    @property
    def label(self) -> str:
        d = f"({self.a} − {self.b})"
        return f"{d} {self.names[0]} − {d} {self.names[1]}"

    def sides(self) -> list[dict[str, Any]]:
        """The four groups of runs it reads: a and b in each regime."""
        return [{**regime, "method": m} for regime in (self.first, self.second) for m in (self.a, self.b)]

    def compare(self, table: pd.DataFrame, metric: str) -> Comparison | None:
        """The per-seed a − b of the first regime against that of the second, on
        the seeds all four groups hold; None where a group has no run yet."""
        if any(select(table, **side).empty for side in self.sides()):
            return None
        d = f"({self.a} − {self.b})"
        within = [compare_rows(table, {**regime, "method": self.a}, {**regime, "method": self.b}, metric, self.a,
                               self.b).differences for regime in (self.first, self.second)]
        return Comparison(f"{d} {self.names[0]}", f"{d} {self.names[1]}", metric, within[0], within[1],
                          higher="is larger")


@dataclass(frozen=True)
class Family:
    """A planned family of ``grid.yaml``: comparisons named before their runs, read
    together with Holm–Bonferroni. Each comparison is a pair of sides, each side the
    column values its runs hold (the family's ``where`` with the side's own), or an
    ``Interaction``; the pairs come first, in the order of ``comparisons``."""

    name: str
    where: dict[str, Any]
    pairs: tuple[tuple[dict[str, Any], dict[str, Any]], ...]
    interactions: tuple[Interaction, ...] = ()

    def label(self, side: dict[str, Any]) -> str:
        """A side as a table names it: its method, with what it sets apart from the
        family's ``where`` ("DTA+SNL at 1 % labeled")."""
        extra = [str(v) for k, v in side.items() if k != "method" and self.where.get(k) != v]
        return side["method"] + (f" at {', '.join(extra)}" if extra else "")

    def labels(self) -> list[str]:
        """Each comparison as the tables name it, in order."""
        return [f"{self.label(a)} − {self.label(b)}" for a, b in self.pairs] + [i.label for i in self.interactions]

    def sides(self) -> list[list[dict[str, Any]]]:
        """The groups of runs each comparison reads, in order."""
        return [[a, b] for a, b in self.pairs] + [i.sides() for i in self.interactions]

    def comparisons(self, table: pd.DataFrame, metric: str = "accuracy (%)") -> list[Comparison | None]:
        """Each pair as a ``Comparison`` over the seeds both sides hold, then each
        interaction; None where a side has no recorded run yet."""
        out: list[Comparison | None] = []
        for a, b in self.pairs:
            if select(table, **a).empty or select(table, **b).empty:
                out.append(None)
                continue
            out.append(compare_rows(table, a, b, metric, self.label(a), self.label(b)))
        return out + [i.compare(table, metric) for i in self.interactions]


def _interaction(entry: dict, base: dict[str, Any], where: str) -> Interaction:
    """``{interaction: [A, B], between: [FIRST, SECOND]}``, each regime a mapping
    of column values with an optional ``as`` (its name in the tables; default its
    values)."""
    methods, between = entry.get("interaction"), entry.get("between")
    if set(entry) != {"interaction", "between"} or not (isinstance(methods, list) and len(methods) == 2
                                                        and all(isinstance(m, str) for m in methods)) \
            or not (isinstance(between, list) and len(between) == 2 and all(isinstance(r, dict) for r in between)):
        raise ConfigError(f"{where}: an interaction is {{interaction: [A, B], between: [{{...}}, {{...}}]}}, "
                          f"got {entry!r}")
    regimes = [{**base, **{k: v for k, v in r.items() if k != "as"}} for r in between]
    names = tuple(str(r.get("as") or ", ".join(str(v) for k, v in r.items() if k != "as")) for r in between)
    return Interaction(methods[0], methods[1], regimes[0], regimes[1], names)


def load_families(path: str | Path) -> list[Family]:
    """The ``families`` of a grid file: ``[{name, where, compare: [[A, B], ...]}]``,
    a side a method name or a mapping of column values, or a comparison an
    interaction (``_interaction``), listed after the pairs; a ``ConfigError``
    names what is wrong and where."""
    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: cannot read the grid: {e}") from e
    out = []
    for i, f in enumerate(spec.get("families") or []):
        where = f"{path}: families[{i}]"
        if not isinstance(f, dict) or set(f) - {"name", "where", "compare"} or not {"name", "compare"} <= set(f):
            raise ConfigError(f"{where}: expected {{name, where, compare}}, got {f!r}")
        base = dict(f.get("where") or {})
        pairs, interactions = [], []
        for j, pair in enumerate(f["compare"]):
            if isinstance(pair, dict):
                interactions.append(_interaction(pair, base, f"{where}.compare[{j}]"))
                continue
            if interactions:
                raise ConfigError(f"{where}.compare[{j}]: list the pairs before the interactions")
            if not (isinstance(pair, list) and len(pair) == 2):
                raise ConfigError(f"{where}.compare[{j}]: expected [A, B], got {pair!r}")
            sides = []
            for side in pair:
                side = {"method": side} if isinstance(side, str) else side
                if not isinstance(side, dict) or "method" not in side:
                    raise ConfigError(f"{where}.compare[{j}]: a side is a method name or a mapping with 'method', "
                                      f"got {side!r}")
                sides.append({**base, **side})
            pairs.append(tuple(sides))
        out.append(Family(str(f["name"]), base, tuple(pairs), tuple(interactions)))
    names = [f.name for f in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: family names repeat: {names}")
    return out


def family_table(table: pd.DataFrame, family: Family, metric: str = "accuracy (%)", margin: float = MARGIN,
                 alpha: float = ALPHA, planned: pd.DataFrame | None = None) -> pd.DataFrame:
    """A planned family read family-wise, one row per comparison: the paired seeds,
    the mean difference, its 95 % interval, the raw paired-t p, the Holm-adjusted
    p over the family's measured comparisons, the family-wise verdict and the
    reading of the interval against ``margin``. A comparison without runs reads
    "not recorded yet: no claim". With ``planned`` (``planned_table``), a column
    "planned seeds" beside "seeds": the seeds the grid plans for both sides, so a
    reading before the grid is complete shows itself as interim."""
    found = family.comparisons(table, metric)
    raw = [c.paired.p if c is not None and c.paired.n >= MIN_SEEDS else math.nan for c in found]
    adjusted = holm(raw)
    rows = []
    for label, sides, c, p, q in zip(family.labels(), family.sides(), found, raw, adjusted):
        row = {"comparison": label, "seeds": c.paired.n if c is not None else 0}
        if planned is not None:
            row["planned seeds"] = len(set.intersection(*(set(select(planned, **side)["seed"]) for side in sides)))
        if c is None:
            rows.append(row | {"mean difference": math.nan, "95 % interval": "—", "p": math.nan, "Holm p": math.nan,
                               "family-wise verdict": "not recorded yet: no claim",
                               "against the margin": "not recorded yet: no claim"})
            continue
        rows.append(row | {"mean difference": c.paired.mean, "95 % interval": interval(c.paired, "+.2f"), "p": p,
                           "Holm p": q, "family-wise verdict": family_verdict(c, q, alpha, margin),
                           "against the margin": c.margin_verdict(margin)})
    return pd.DataFrame(rows)


def holm_plan(table: pd.DataFrame, family: Family, metric: str = "accuracy (%)", alpha: float = ALPHA,
              at_most: int = 100) -> pd.DataFrame:
    """How many paired seeds each comparison of ``family`` would need, at its
    observed mean and sd, for its interval to clear 0 after the Holm correction:
    the step-down tests the k-th smallest p against alpha / (m - k + 1), so the
    comparison needs a (1 - alpha / (m - k + 1)) t-interval of half-width below
    its |mean|, at its present rank k. A planning figure, not a promise: the mean
    and the sd move as seeds are added."""
    found = family.comparisons(table, metric)
    raw = [c.paired.p if c is not None and c.paired.n >= 2 else math.nan for c in found]
    ranked = sorted((p, i) for i, p in enumerate(raw) if not math.isnan(p))
    m = len(ranked)
    level = {i: alpha / (m - k) for k, (_, i) in enumerate(ranked)}
    rows = []
    for i, (label, c) in enumerate(zip(family.labels(), found)):
        p = c.paired if c is not None else None
        if p is None or p.n < 2 or i not in level:
            rows.append({"comparison": label, "seeds": p.n if p else 0, "mean": math.nan, "sd": math.nan,
                         "Holm level": math.nan, "seeds to clear 0": math.nan})
            continue
        need = (seeds_for_half_width(p.sd, abs(p.mean) * (1 - 1e-9), confidence=1 - level[i], at_most=at_most)
                if p.mean != 0 else math.nan)
        rows.append({"comparison": label, "seeds": p.n, "mean": p.mean, "sd": p.sd, "Holm level": level[i],
                     "seeds to clear 0": need})
    return pd.DataFrame(rows)
