"""What the results chapter (06) reads off the recorded runs.

Each function takes the tables of ``ssfer.book.grid_tables`` (or the records) and returns
what a section shows: a table to display and the values its prose cites, as
``{glue key: value}`` for ``tables.glue_values``. So a chapter cell is a call and
a display, the analysis is tested here, and a value a sentence argues from is
computed once. Values keep the types the prose formats (``int``, ``str`` made by
``tables.num``), so they render as before.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ssfer.book import grid_tables, recording, tables, verdicts
from ssfer.config import ConfigError
from ssfer.record import RunRecord
from ssfer.stats import holm

# the primary grid began as the label-smoothing profile's control: its runs' grid variant
CONTROL = grid_tables.PRIMARY["variant"]
FER10 = {"data set": "FERPlus", "budget": "10 % labeled"}
FER5 = {"data set": "FERPlus", "budget": "5 % labeled"}
FER2013 = {"data set": "FER2013", "budget": "100 per class"}
RARE = ("fear", "disgust", "contempt")
# glue key of each planned comparison (grid_tables.PLANNED, in order)
PLANNED_KEYS = dict(zip(grid_tables.PLANNED, ("snl_fix", "dta_flex", "snl_dta", "fix_sup", "snl_sup")))
# the label-smoothing profile's comparisons the prose cites: key, (a, b), runs, metric
PROFILE_PAIRS = [
    ("f10_snl_fix", ("DTA+SNL", "FixMatch"), FER10, "accuracy (%)"),
    ("f10_dta_fix", ("DTA", "FixMatch"), FER10, "accuracy (%)"),
    ("f10_snl_dta", ("DTA+SNL", "DTA"), FER10, "accuracy (%)"),
    ("f10_fix_sup", ("FixMatch", "supervised"), FER10, "accuracy (%)"),
    ("f10_snl_sup", ("DTA+SNL", "supervised"), FER10, "accuracy (%)"),
    ("f10_snl_fix_mca", ("DTA+SNL", "FixMatch"), FER10, "mean class accuracy (%)"),
    ("f10_dta_flex", ("DTA", "FlexMatch"), FER10, "accuracy (%)"),
    ("f10_dta_free", ("DTA", "FreeMatch"), FER10, "accuracy (%)"),
    ("f10_dta_adacm", ("DTA", "Ada-CM"), FER10, "accuracy (%)"),
    ("f5_snl_fix", ("DTA+SNL", "FixMatch"), FER5, "accuracy (%)"),
    ("f5_fix_sup", ("FixMatch", "supervised"), FER5, "accuracy (%)"),
    ("f13_snl_fix", ("DTA+SNL", "FixMatch"), FER2013, "accuracy (%)"),
    ("f13_fix_sup", ("FixMatch", "supervised"), FER2013, "accuracy (%)"),
]
# the controls on the primary grid, each method against itself: key, variant, method, metric
CONTROL_PAIRS = [
    ("st_fix", "student pseudo labels", "FixMatch", "accuracy (%)"),
    ("st_flex", "student pseudo labels", "FlexMatch", "accuracy (%)"),
    ("bal_fix", "balanced labeled batches", "FixMatch", "accuracy (%)"),
    ("bal_snl", "balanced labeled batches", "DTA+SNL", "accuracy (%)"),
    ("balm_fix", "balanced labeled batches", "FixMatch", "mean class accuracy (%)"),
    ("balm_snl", "balanced labeled batches", "DTA+SNL", "mean class accuracy (%)"),
]
ACCEPT_KEYS = (("fix", "FixMatch"), ("flex", "FlexMatch"), ("dta", "DTA"), ("snl", "DTA+SNL"))


def repo_path(name: str | Path) -> Path:
    """``name`` relative to the repository root: papermill runs there, a Jupyter
    session may start in ``notebooks/``."""
    p = Path(name)
    return p if p.is_absolute() or p.exists() else Path("..") / p


@dataclass
class Recorded:
    """The recorded runs, the planned grid and their table, split as the chapter reads them."""

    records: dict[str, RunRecord]
    planned: list[recording.Planned]
    every: pd.DataFrame = field(repr=False)
    primary_planned: list[recording.Planned] = field(default_factory=list, repr=False)  # grid_tables.primary_planned
    replays: list[dict] = field(default_factory=list, repr=False)                   # recording.load_replays
    families: list[grid_tables.Family] = field(default_factory=list, repr=False)    # grid_tables.load_families
    planned_keys: pd.DataFrame | None = field(default=None, repr=False)             # grid_tables.planned_table

    @property
    def profile(self) -> pd.DataFrame:
        """The label-smoothing profile's runs (no grid variant); each control has its own section."""
        return self.every[self.every["variant"] == ""]

    @property
    def primary(self) -> pd.DataFrame:
        return tables.select(self.every, **grid_tables.PRIMARY)

    @property
    def missing(self) -> list[str]:
        return [p.name for p in self.planned if p.name not in self.records]

    def keyed(self, rows: pd.DataFrame, methods=None) -> dict:
        """``{(method, seed): record}`` of the runs in ``rows`` (optionally of ``methods`` only)."""
        return {(r.method, r.seed): self.records[r.run] for r in rows.itertuples()
                if methods is None or r.method in methods}


def load(results_dir: str | Path, grid: str | Path) -> Recorded:
    records = recording.load_results(repo_path(results_dir))
    planned = recording.load_grid(repo_path(grid))
    keys = grid_tables.planned_table(planned, recording.grid_root(repo_path(grid), planned))
    return Recorded(records, planned, grid_tables.results_table(records, planned),
                    grid_tables.primary_planned(planned, keys), recording.load_replays(repo_path(results_dir)),
                    grid_tables.load_families(repo_path(grid)), keys)


def family(prim: pd.DataFrame, metric: str, prefix: str, spec: str = "+.1f") -> tuple[dict, pd.DataFrame | None]:
    """The planned family on ``metric``: each comparison's values (``prefix_KEY_mean``
    ... and ``prefix_KEY_margin``, its reading against ``verdicts.MARGIN``) and the
    table of the recorded ones (None before any; intervals formatted by ``spec``)."""
    values, found = {}, []
    for (a, b), key in PLANNED_KEYS.items():
        name = f"{prefix}_{key}"
        if not {a, b} <= set(prim["method"]):
            values |= grid_tables.pair_values(name, prim, a, b, metric) | {f"{name}_margin": "not recorded yet: no claim"}
            continue
        c = verdicts.compare(prim, a, b, metric)
        values |= verdicts.comparison_values(name, c) | {f"{name}_margin": c.margin_verdict()}
        found.append(c)
    if not found:
        return values, None
    shown = verdicts.comparison_table(found, spec).drop(columns="metric")
    shown.insert(3, "half-width", [c.paired.half_width for c in found])
    shown["against the margin"] = [c.margin_verdict() for c in found]
    return values, shown


def bottom_line(prim: pd.DataFrame, metric: str = "accuracy (%)") -> str:
    """The planned family on ``metric`` in one sentence, read family-wise (Holm over
    its measured comparisons; ``verdicts.family_summary``)."""
    found = [verdicts.compare(prim, a, b, metric) for a, b in grid_tables.PLANNED if {a, b} <= set(prim["method"])]
    adjusted = holm([c.paired.p if c.paired.n >= verdicts.MIN_SEEDS else math.nan for c in found])
    return verdicts.family_summary(found, len(grid_tables.PLANNED), adjusted=adjusted)


def family_text(frame: pd.DataFrame) -> str:
    """A ``grid_tables.family_table`` as plain text: two decimals, p values as printed."""
    shown = frame.assign(**{col: frame[col].map(verdicts.p_text) for col in ("p", "Holm p")},
                         **{"mean difference": frame["mean difference"].map(lambda v: tables.num(v, "+.2f"))})
    return shown.to_string(index=False)


def family_report(rec: Recorded, metric: str = "accuracy (%)") -> str:
    """Every planned family of the grid on ``metric`` as plain text (``ssfer results
    family``), each read family-wise (Holm–Bonferroni at ``verdicts.ALPHA`` over its
    comparisons' paired-t p values) beside its 95 % intervals and their reading
    against the margin; then the primary family's bottom line and the training time
    of the runs each family reads, so the verdicts can be read without building the book."""
    lines = [f"the planned families; {metric}, points; read family-wise with Holm at {verdicts.ALPHA:g}; "
             f"margin {verdicts.amount(verdicts.MARGIN)}"]
    interim = []
    for fam in rec.families:
        regime = ", ".join(str(v) for v in fam.where.values())
        frame = grid_tables.family_table(rec.every, fam, metric, planned=rec.planned_keys)
        lines += ["", f"{fam.name} ({regime}):", family_text(frame)]
        if "planned seeds" in frame:
            interim += [f"{r['comparison']} ({fam.name}: {r['seeds']} of {r['planned seeds']})"
                        for _, r in frame.iterrows() if 0 < r["seeds"] < r["planned seeds"]]
        runs = {r for sides in fam.sides() for side in sides for r in tables.select(rec.every, **side)["run"]}
        seconds = sum(rec.records[r].summary.get("train_seconds", 0.0) for r in runs)
        lines.append(f"{len(runs)} runs recorded, {seconds:,.0f} s of training (train_seconds)")
    if not rec.families:
        lines.append("the grid names no planned family")
    lines += ["", bottom_line(rec.primary, metric)]
    if interim:
        lines.append("Interim: these comparisons have fewer paired seeds than the grid plans, and their verdicts "
                     "stand only once every planned seed is recorded: " + "; ".join(interim) + ".")
    return "\n".join(lines)


def plan(rec: Recorded, half_width: float = 1.0) -> tuple[dict, pd.DataFrame]:
    """The seed plan of the primary grid beside what is recorded, and where its runs came from."""
    every, prim = rec.every, rec.primary
    frame = grid_tables.plan(every, half_width, **grid_tables.PRIMARY)
    total = grid_tables.plan_total(every, frame, **grid_tables.PRIMARY)
    short = frame[frame["half-width"] > half_width]["comparison"].tolist()
    source = grid_tables.provenance({r: rec.records[r] for r in prim["run"]})
    values = {
        "plan_complete": total["complete seeds"], "plan_needed": total["seeds needed"],
        "plan_runs": total["runs to record"], "plan_hours": tables.num(total["CPU hours"]),
        "plan_untimed": ", ".join(total["not timed"]) or "none", "max_seeds": grid_tables.MAX_SEEDS,
        "n_primary": len(prim),
        "n_primary_planned": len(rec.primary_planned),
        "plan_short": ", ".join(short) if short else "none",
        "n_codes": source["code"].nunique(), "n_cpus": source["CPU kind"].nunique(),
        "cpu_kinds": "; ".join(f"{k} ({n} runs)" for k, n in source["CPU kind"].value_counts().items()) or "none",
    }
    return values, frame


def replays(rec: Recorded) -> tuple[dict, pd.DataFrame]:
    """The logged replays (``ssfer results replay --log``): each run, whether its first
    steps trained again bit for bit, and the CPU kind and code on each side."""
    def outcome(r: dict) -> str:
        if r["identical"]:
            return "bit for bit"
        step = r["first difference at step"]
        return f"differs from step {step}" if step is not None else "differs in its number of logged rows"

    rows = [{"run": r["run"], "steps": r["steps"], "outcome": outcome(r),
             "recorded on": f"{r['recorded CPU kind']}, code {r['recorded code']}",
             "replayed on": f"{r['replayed CPU kind']}, code {r['replayed code']}"} for r in rec.replays]
    frame = pd.DataFrame(rows, columns=["run", "steps", "outcome", "recorded on", "replayed on"])
    return {"n_replays": len(frame), "n_replays_identical": sum(bool(r["identical"]) for r in rec.replays)}, frame


def rare_test_faces(classes: pd.DataFrame, of=RARE) -> dict:
    """How many test faces each class of ``of`` has in the primary grid's test split."""
    faces = tables.select(classes, **grid_tables.PRIMARY).groupby("class")["test faces"].max()
    return {f"faces_{c}": int(faces.get(c, 0)) for c in of}


def rule_facts(rec: Recorded, rows: pd.DataFrame, tag: str) -> tuple[dict, pd.DataFrame]:
    """What the threshold rules did in ``rows``' runs (``tables.threshold_facts``):
    FlexMatch's highest threshold, whether it left its warm-up and the share it
    accepted; DTA's (DTA and DTA+SNL runs) steps on its floor and pseudo labels
    per face for disgust and contempt. Keys start with ``tag``."""
    facts = tables.threshold_facts(rec.keyed(rows, ("FlexMatch", "DTA", "DTA+SNL")))
    flex, dta = facts[facts["method"] == "FlexMatch"], facts[facts["method"].isin(["DTA", "DTA+SNL"])]
    top = flex["top threshold"].max() if len(flex) else None
    share = [tables.accepted_share(rec.records[r]) for r in rows.loc[rows["method"] == "FlexMatch", "run"]]
    values = {
        f"{tag}_flex_top": tables.num(top, ".2f"),
        f"{tag}_flex_phase": "no FlexMatch run recorded" if top is None else
        "never left its warm-up" if tables.flexmatch_phase([top]) == "still in its warm-up" else
        "left its warm-up in at least one run",
        f"{tag}_flex_accept": tables.num(100 * np.mean(share) if share else None),
    }
    for c in ("disgust", "contempt"):
        one = dta[dta["class"] == c]
        values[f"{tag}_floor_{c}"] = tables.num(one["steps on the floor (%)"].mean() if len(one) else None)
        values[f"{tag}_pl_{c}"] = tables.num(one["pseudo labels per face"].mean() if len(one) else None, ".2f")
    return values, facts


def rare_rules(facts: pd.DataFrame, of=RARE) -> pd.DataFrame:
    """``rule_facts``' table for the classes ``of``, the mean over the seeds per method."""
    rare = facts[facts["class"].isin(of)].groupby(["method", "class"], sort=False).mean(numeric_only=True)
    return rare.drop(columns="seed").reset_index()


def control_values(every: pd.DataFrame) -> dict:
    """Each control of the primary grid against the primary runs, method by method
    (``CONTROL_PAIRS``; ``KEY_margin`` is its reading against ``verdicts.MARGIN``),
    and how many runs each control has."""
    values = {}
    for key, variant, method, metric in CONTROL_PAIRS:
        rows = tables.select(every, method=method, **FER10)
        if {variant, CONTROL} <= set(rows["variant"]):
            c = verdicts.compare(rows, variant, CONTROL, metric, by="variant")
            values |= verdicts.comparison_values(key, c) | {f"{key}_margin": c.margin_verdict()}
        else:
            values |= grid_tables.pair_values(key, rows, variant, CONTROL, metric, by="variant")
            values[f"{key}_margin"] = values[f"{key}_verdict"]
    for variant in dict.fromkeys(v for _, v, _, _ in CONTROL_PAIRS):
        values[f"n_{variant.split()[0]}"] = int((every["variant"] == variant).sum())
    return values | {"controls_reading": controls_reading(values), "controls_sentence": controls_sentence(values)}


def controls_sentence(values: dict) -> str:
    """The controls in one sentence for the landing page: how many of their moves
    in test accuracy exclude 0, and the largest of them; exploration, outside the
    planned family. True whatever the numbers."""
    moves = [(k, v, m) for k, v, m, metric in CONTROL_PAIRS if metric == "accuracy (%)" and values[f"{k}_n"]]
    if not moves:
        return "The two controls on the primary grid are not recorded yet."
    shown = [(k, v, m) for k, v, m in moves
             if not values[f"{k}_verdict"].startswith(("the runs show no difference", "not", "one seed"))
             and "no claim" not in values[f"{k}_verdict"]]
    seeds = sorted({values[f"{k}_n"] for k, _, _ in moves})
    n = "/".join(map(str, seeds))
    if not shown:
        return (f"Neither control (student pseudo labels, balanced labeled batches; exploration, {n} seeds) moves "
                "any method's test accuracy by an amount its interval can tell from 0.")
    said = "; ".join(f"{v} move {m} by {values[f'{k}_mean']} points" for k, v, m in shown)
    return (f"Of the controls' {len(moves)} moves in test accuracy (exploration, {n} seeds), "
            f"{len(shown)} exclude{'s' if len(shown) == 1 else ''} 0: {said}.")


def _named(verdict: str) -> str:
    """A control's verdict names the setting that scores higher: the control's
    variant, or the primary grid (not its variant's name)."""
    return verdict.replace(f"{CONTROL} scores", "the primary grid scores")


def _said(mean: str, interval: str, n: int, verdict: str) -> str:
    """A paired difference as the prose gives it: "+1.2 [+0.3, +2.1] over 4 paired
    seeds (verdict)", or "+1.2 at one seed (no claim)"."""
    return f"{mean} at one seed (no claim)" if n == 1 else f"{mean} {interval} over {n} paired seeds ({_named(verdict)})"


def _move(values: dict, key: str, method: str) -> str:
    """How far ``method`` moved under a control (``key``'s values), for the prose."""
    if not values[f"{key}_n"]:
        return f"{method} not recorded yet"
    return f"{method} moves by " + _said(values[f"{key}_mean"], f"[{values[f'{key}_low']}, {values[f'{key}_high']}]",
                                         values[f"{key}_n"], values[f"{key}_margin"])


def controls_reading(values: dict) -> str:
    """One sentence per control (``control_values``' keys): each method's move
    against itself in test accuracy (and in mean class accuracy where the control
    names it), its interval, seeds and reading against the margin, or that the
    control is not recorded yet."""
    parts = []
    for variant in dict.fromkeys(v for _, v, _, _ in CONTROL_PAIRS):
        if not values[f"n_{variant.split()[0]}"]:
            parts.append(f"With {variant}: not recorded yet.")
            continue
        moves = [("" if metric == "accuracy (%)" else f"on {metric.removesuffix(' (%)')}, ") + _move(values, k, m)
                 for k, v, m, metric in CONTROL_PAIRS if v == variant]
        parts.append(f"With {variant}, " + "; ".join(moves) + ".")
    return " ".join(parts)


def _measured(runs: pd.DataFrame, classes: pd.DataFrame, a: str, b: str, by: str, of=RARE,
              min_faces: int = grid_tables.MIN_TEST_FACES) -> list[dict]:
    """``a`` − ``b`` (values of ``by``) over ``runs``, paired by seed, on test
    accuracy, mean class accuracy and the recall of each class of ``of``: one row
    each, with its test faces, read against 0 and ``verdicts.MARGIN`` (no verdict
    below ``min_faces`` test faces)."""
    faces = int(classes[classes["run"].isin(runs["run"])].groupby("run")["test faces"].sum().max())
    measures = [(m.removesuffix(" (%)"), runs, m, faces) for m in ("accuracy (%)", "mean class accuracy (%)")]
    for c in of:
        one = classes[classes["run"].isin(runs["run"]) & (classes["class"] == c)]
        measures.append((f"{c} recall", one, "recall (%)", int(one["test faces"].max())))
    out = []
    for measure, rows, col, n in measures:
        cmp = verdicts.compare(rows, a, b, col, by=by)
        out.append({"measure": measure, "test faces": n, "mean": cmp.paired.mean,
                    "95 % interval": verdicts.interval(cmp.paired), "seeds": cmp.paired.n,
                    "verdict": _named(grid_tables.class_verdict(cmp, n, min_faces))})
    return out


def control_classes(every: pd.DataFrame, classes: pd.DataFrame, of=RARE,
                    min_faces: int = grid_tables.MIN_TEST_FACES) -> pd.DataFrame:
    """Each control of the primary grid against the primary runs, method by method
    (``CONTROL_PAIRS``' methods), on test accuracy, mean class accuracy and the
    recall of each class of ``of`` (from ``classes``, a ``grid_tables.class_table``):
    one row per control, method and measure, with the test faces it rests on.
    These are exploration, not the planned family, but are read as it is,
    against 0 and against ``verdicts.MARGIN``; a class with fewer than
    ``min_faces`` test faces gets its interval but no verdict. A control with no
    run yet has no rows."""
    out = []
    for variant in dict.fromkeys(v for _, v, _, _ in CONTROL_PAIRS):
        for method in dict.fromkeys(m for _, v, m, _ in CONTROL_PAIRS if v == variant):
            runs = tables.select(every, method=method, **FER10)
            runs = runs[runs["variant"].isin([variant, CONTROL])]
            if variant not in set(runs["variant"]):
                continue
            out += [{"control": variant, "method": method, **row}
                    for row in _measured(runs, classes, variant, CONTROL, "variant", of, min_faces)]
    frame = pd.DataFrame(out, columns=["control", "method", "measure", "test faces", "mean", "95 % interval",
                                       "seeds", "verdict"])
    return frame.rename(columns={"mean": "mean move"})


def within_control(every: pd.DataFrame, classes: pd.DataFrame, variant: str, a: str, b: str, of=RARE,
                   min_faces: int = grid_tables.MIN_TEST_FACES) -> pd.DataFrame:
    """``a`` − ``b`` inside one control (``variant``) and, beside it, on the
    primary grid at the same seeds: does a comparison of the family hold under
    the control's setting? Rows as ``control_classes``'; empty until the control
    has runs of both methods at a seed."""
    runs = tables.select(every, **FER10)
    inside = runs[(runs["variant"] == variant) & runs["method"].isin([a, b])]
    seeds = set(inside.loc[inside["method"] == a, "seed"]) & set(inside.loc[inside["method"] == b, "seed"])
    out = []
    for setting in (variant, CONTROL):
        rows = runs[(runs["variant"] == setting) & runs["method"].isin([a, b]) & runs["seed"].isin(seeds)]
        if seeds:
            name = setting if setting != CONTROL else "the primary grid, same seeds"
            out += [{"setting": name, **row} for row in _measured(rows, classes, a, b, "method", of, min_faces)]
    frame = pd.DataFrame(out, columns=["setting", "measure", "test faces", "mean", "95 % interval", "seeds",
                                       "verdict"])
    return frame.rename(columns={"mean": f"{a} − {b}"})


def within_reading(frame: pd.DataFrame, measure: str = "accuracy") -> str:
    """``within_control``'s ``measure`` rows as one sentence: the difference
    inside the control, then on the primary grid at the same seeds."""
    diff = next((c for c in frame.columns if " − " in c), None)
    rows = frame[frame["measure"] == measure]
    if diff is None or rows.empty:
        return "Not recorded yet: the control has no seed with runs of both methods."
    said = [f"{r.setting}: " + _said(f"{r[diff]:+.1f}", r["95 % interval"], r.seeds, r.verdict)
            for _, r in rows.iterrows()]
    return f"{diff} on {measure}, " + "; ".join(said) + "."


def recall_reading(moves: pd.DataFrame, min_faces: int = grid_tables.MIN_TEST_FACES) -> str:
    """The controls' moves on the recall of each rare class with ``min_faces`` test
    faces or more (rows of ``control_classes``), as one sentence per class for
    the prose; the classes with fewer are left to the table."""
    rows = moves[moves["measure"].str.endswith(" recall") & (moves["test faces"] >= min_faces)]
    if rows.empty:
        return "No control has a run yet." if moves.empty else \
            f"No rare class has {min_faces} test faces or more, so no recall is read here."
    parts = []
    for measure, one in rows.groupby("measure", sort=False):
        said = []
        for control, by in one.groupby("control", sort=False):
            each = [f"{r.method} moves by " + _said(f"{r['mean move']:+.1f}", r["95 % interval"], r.seeds, r.verdict)
                    for _, r in by.iterrows()]
            said.append(f"with {control}, " + "; ".join(each))
        c = measure.removesuffix(" recall")
        parts.append(f"On {c} recall ({int(one['test faces'].max())} test faces), " + "; ".join(said) + ".")
    return " ".join(parts)


def leaked(rec: Recorded, dataset: str) -> str:
    """How many of a data set's test faces are byte-identical copies of training
    faces ("n of N"), from the first recorded run on it."""
    runs_of = [r for r in rec.records.values() if grid_tables.DATASET_NAMES.get(r.config.data.dataset) == dataset]
    lf = runs_of[0].summary.get("test_leak_free") if runs_of else None
    return f"{lf['n_removed']} of {lf['n_removed'] + lf['n']}" if lf else "not recorded yet"


def scores(rec: Recorded) -> tuple[dict, pd.DataFrame]:
    """The label-smoothing profile's scores over seeds (``grid_tables.mean_sd`` with the
    commonest-class rate), test leaks, and the FERPlus 10 % costs the prose cites.
    One profile only: the table's caption names it (a profile column would be one value)."""
    table = rec.profile
    summary = grid_tables.mean_sd(table)
    base = table.groupby("data set")["commonest class (%)"].first()
    summary.insert(3, "commonest class (%)", summary["data set"].map(base))
    fer10 = tables.select(table, **FER10)
    sup10 = fer10[fer10["method"] == "supervised"]
    ssl10 = fer10[fer10["method"] != "supervised"]
    fastest = ssl10.loc[ssl10["train minutes"].idxmin()] if len(ssl10) else None
    values = {
        "leak_ferplus": leaked(rec, "FERPlus"), "leak_fer2013": leaked(rec, "FER2013"),
        "n_below_commonest": len(table[table["accuracy (%)"] < table["commonest class (%)"]]),
        "sup10_acc": tables.num(sup10["accuracy (%)"].mean()), "sup10_n": len(sup10),
        # the runs shared two cores with other jobs, so each one's minutes are an upper
        # bound on its cost: the fastest run is the best estimate the records give
        "sup10_minutes": tables.num(sup10["train minutes"].min()),
        "ssl10_minutes": tables.num(fastest["train minutes"] if fastest is not None else None),
        "ssl10_fastest": fastest["method"] if fastest is not None else "none recorded yet",
    }
    return values, summary


def paired_table(table: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    """Every group's paired comparisons (``grid_tables.comparisons``) on accuracy and mean
    class accuracy, as one table; the values the prose cites (``PROFILE_PAIRS``) and
    how many intervals exclude 0 against how many chance alone would."""
    groups = [g for g in table[["data set", "budget"]].drop_duplicates().itertuples(index=False)
              if g.budget != "all labels"]
    frames = []
    for ds, budget in groups:
        for metric in ("accuracy (%)", "mean class accuracy (%)"):
            found = grid_tables.comparisons(table, metric, **{"data set": ds, "budget": budget})
            if found:
                frames.append(verdicts.comparison_table(found).assign(**{"data set": ds, "budget": budget}))
    cols = ["data set", "budget", "comparison", "metric", "mean difference", "95 % interval", "wins", "verdict"]
    shown = pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame()
    claims = shown[~shown["verdict"].str.endswith("no claim")] if frames else shown
    values = {"n_intervals": len(claims),
              "n_excluding_zero": int((claims["verdict"] != verdicts.NO_DIFFERENCE).sum()) if len(claims) else 0,
              "n_by_chance": tables.num(len(claims) / 20, ".1f")}
    for key, (a, b), where, metric in PROFILE_PAIRS:
        values |= grid_tables.pair_values(key, table, a, b, metric, **where)
    return values, shown


def acceptance(rec: Recorded, rows: pd.DataFrame) -> pd.DataFrame:
    """The share of each logged batch's unlabeled faces that passed the threshold,
    per semi-supervised run of ``rows``: method, seed, step, ``accepted (%)``."""
    return pd.DataFrame([{"method": r.method, "seed": r.seed, "step": h["step"], "accepted (%)": 100 * h["mask_rate"]}
                         for r in rows.itertuples() if r.method != "supervised"
                         for h in rec.records[r.run].history if "mask_rate" in h])


def acceptance_values(rates: pd.DataFrame, prefix: str) -> dict:
    """Each method's share accepted: the mean over each run's training, then over the seeds."""
    per_run = rates.groupby(["method", "seed"])["accepted (%)"].mean().groupby("method").mean() if len(rates) else {}
    return {f"{prefix}_{key}": tables.num(per_run.get(method)) for key, method in ACCEPT_KEYS}


def smoothing_values(rec: Recorded) -> dict:
    """The profile's label smoothing, the target it trains the right class toward,
    and FlexMatch's highest last-step threshold on FERPlus 10 %."""
    fer10 = tables.select(rec.profile, **FER10)
    profile = rec.records[fer10["run"].iloc[0]] if len(fer10) else None
    ls = profile.config.train.label_smoothing if profile else float("nan")
    n_classes = len(profile.class_names) if profile else float("nan")
    flex = [rec.records[r].history for r in tables.select(rec.profile, method="FlexMatch", **FER10)["run"]]
    last_th = [max(h["thresholds"]) for hist in flex for h in hist[-1:] if "thresholds" in h]
    return {"ls": tables.num(ls, "g"), "ls_target": tables.num(1 - ls + ls / n_classes, ".4f"),
            "n_classes_ferplus": tables.num(n_classes, "g"),
            "flex_top_threshold": tables.num(max(last_th) if last_th else None, ".2f")}


def first_seed_runs(rec: Recorded, methods, seed: int = 0, **where) -> dict[str, RunRecord]:
    """``{method: record}`` at ``seed`` in the profile's runs matching ``where``, for the methods recorded."""
    out = {}
    for m in methods:
        sel = tables.select(rec.profile, method=m, seed=seed, **where)
        if len(sel):
            out[m] = rec.records[sel["run"].iloc[0]]
    return out


def pseudo_label_totals(rec: Recorded, rows: pd.DataFrame) -> pd.DataFrame:
    """Per method and class, summed over the semi-supervised runs of ``rows``: the
    pseudo labels accepted per unlabeled face of the class (``quantity``) and the
    share of them that were right (``precision``); long, one row per measure."""
    parts = [tables.pseudo_labels(rec.records[r.run]).assign(method=r.method, seed=r.seed)
             for r in rows.itertuples() if r.method != "supervised"]
    if not parts:
        return pd.DataFrame(columns=["method", "class", "measure", "value"])
    pl = pd.concat(parts, ignore_index=True)
    per = pl.groupby(["method", "class"], sort=False)[["accepted", "seen", "correct"]].sum().reset_index()
    per["quantity"] = per["accepted"] / per["seen"]
    per["precision"] = per["correct"] / per["accepted"].where(per["accepted"] > 0)
    return per.melt(id_vars=["method", "class"], value_vars=["quantity", "precision"], var_name="measure")


def profile_control(rec: Recorded) -> tuple[dict, pd.DataFrame | None, pd.DataFrame | None]:
    """The primary grid read as the label-smoothing profile's control: its run
    counts, shares accepted, the comparisons the prose cites, and the reading of
    DTA+SNL − FixMatch under the control (``verdicts.under_control``). Returns the
    values, the control's scores over seeds and its comparisons (None without runs)."""
    table, control = rec.profile, rec.primary
    values = {"n_control": len(control), "n_control_planned": len(rec.primary_planned)}
    values |= acceptance_values(acceptance(rec, control), "ctl_accept")
    pairs = [("ctl_snl_fix", ("DTA+SNL", "FixMatch")), ("ctl_snl_flex", ("DTA+SNL", "FlexMatch")),
             ("ctl_fix_sup", ("FixMatch", "supervised")), ("ctl_snl_sup", ("DTA+SNL", "supervised"))]
    for name, (a, b) in pairs:
        values |= grid_tables.pair_values(name, control, a, b, **FER10)
    pair = ("DTA+SNL", "FixMatch")
    absent = [m for m in pair if m not in set(tables.select(table, **FER10)["method"]) & set(control["method"])]
    if absent:
        values["ctl_reading"] = (f"No run of {' or '.join(absent)} is recorded in both groups yet, so the "
                                 "control supports no claim.")
    else:
        values["ctl_reading"] = verdicts.under_control(verdicts.compare(table, *pair, "accuracy (%)", **FER10),
                                                     verdicts.compare(control, *pair, "accuracy (%)", **FER10),
                                                     "without label smoothing")
    if not len(control):
        return values, None, None
    found = [verdicts.compare(control, a, b, "accuracy (%)") for _, (a, b) in pairs if {a, b} <= set(control["method"])]
    summary = profiled(grid_tables.mean_sd(control, by=("data set", "budget", "variant", "method")))
    return values, summary, verdicts.comparison_table(found) if found else None


def smoothing_shifts(rec: Recorded, ls: str) -> tuple[dict, pd.DataFrame | None]:
    """What dropping label smoothing did to each method on its own: the primary
    run minus the profile's run at the same seed. ``ls``: the profile's smoothing
    as the prose writes it (``smoothing_values()["ls"]``)."""
    smoothed = f"label smoothing {ls}"
    both = tables.select(rec.every, **FER10).assign(
        setting=lambda d: d["variant"].replace({"": smoothed, CONTROL: CONTROL}))
    values, shifts = {}, []
    for key, m in [("sup", "supervised"), ("fix", "FixMatch"), ("flex", "FlexMatch"), ("snl", "DTA+SNL")]:
        rows = both[both["method"] == m]
        values |= grid_tables.pair_values(f"ctl_shift_{key}", rows, CONTROL, smoothed, by="setting")
        if {smoothed, CONTROL} <= set(rows["setting"]):
            shifts.append(verdicts.compare(rows, CONTROL, smoothed, "accuracy (%)", by="setting",
                                         name=f"{m}: accuracy (%)"))
    return values, verdicts.comparison_table(shifts) if shifts else None


PROFILE_NAMES = {"": "label smoothing 0.1"}   # a grid variant as the tables name the profile it ran


def profiled(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its ``variant`` column shown as ``profile``: every table that
    gives a group's scores names the profile they come from, so two tables of one
    budget never look like one measurement that disagrees with itself."""
    return frame.assign(variant=frame["variant"].map(lambda v: PROFILE_NAMES.get(v, v))).rename(
        columns={"variant": "profile"})


def published_beside(every: pd.DataFrame) -> pd.DataFrame:
    """The published FERPlus numbers (``ssfer.book.references``) above this book's
    means, each named by budget and profile (the label-smoothing profile and the
    primary grid's, without it; the controls are left out)."""
    from ssfer.book.references import references

    rows = every[(every["data set"] == "FERPlus") & every["variant"].isin(["", CONTROL])]
    ours = rows.groupby(["method", "budget", "variant"], sort=False)["accuracy (%)"].mean().reset_index()
    ours["setting"] = ("FERPlus, " + ours["budget"] + ", "
                       + ours["variant"].map(lambda v: PROFILE_NAMES.get(v, v)))
    ours["source"] = "this book, results/ (CPU, from scratch, 48 px)"
    return pd.concat([references("FERPlus"), ours[["method", "setting", "accuracy (%)", "source"]]],
                     ignore_index=True)


def recompute(rec: Recorded, names: list[str], roots: dict[str, Any], device: str | None = None) -> pd.DataFrame:
    """Train the recorded runs ``names`` again here and compare with their records:
    accuracy recorded and recomputed, the difference, whether the confusion
    matrices agree, the devices. ``roots``: where each real data set lies here
    (``{"ferplus": path or None, ...}``); a run whose recorded ``data.root`` does
    not exist needs one."""
    from ssfer.train import run

    if not names:
        raise ValueError("parameter 'runs': recompute=True needs the names of the recorded runs to train again "
                         f"(recorded: {', '.join(rec.records)})")
    unknown = sorted(set(names) - set(rec.records))
    if unknown:
        raise ValueError(f"parameter 'runs': no recorded run {unknown}")
    rows = []
    for name in names:
        cfg = rec.records[name].config
        over: dict[str, Any] = {"train.progress": False}
        if roots.get(cfg.data.dataset):
            over["data.root"] = roots[cfg.data.dataset]
        elif cfg.data.dataset in roots and not Path(cfg.data.root).exists():
            raise ValueError(f"run {name!r} was recorded with data.root={cfg.data.root!r}, which does not exist "
                             f"here: pass {cfg.data.dataset}_root")
        if device is not None:
            over["train.device"] = device
        again = run(cfg.with_overrides(over)).summary
        was = rec.records[name].summary
        rows.append({"run": name, "recorded accuracy (%)": 100 * was["accuracy"],
                     "recomputed accuracy (%)": 100 * again["accuracy"],
                     "difference (points)": 100 * (again["accuracy"] - was["accuracy"]),
                     "same confusion matrix": was["confusion"] == again["confusion"],
                     "recorded device": was["device"], "recomputed device": again["device"]})
    return pd.DataFrame(rows)


def seed_provenance(rec: Recorded) -> tuple[dict, pd.DataFrame]:
    """Per seed of the primary grid: its runs' methods, CPU kinds and code
    fingerprints. A seed whose methods ran on one CPU kind with one code pairs
    them bit for bit as the same machine would; another kind adds its rounding
    to the differences, noise expected (not measured) to favour no method."""
    prim = rec.primary
    source = grid_tables.provenance({r: rec.records[r] for r in prim["run"]}).merge(prim[["run", "method", "seed"]])
    rows = []
    for seed, runs in source.groupby("seed"):
        rows.append({"seed": int(seed), "runs": len(runs), "methods": ", ".join(runs["method"]),
                     "CPU kinds": "; ".join(dict.fromkeys(runs["CPU kind"])), "codes": runs["code"].nunique()})
    frame = pd.DataFrame(rows, columns=["seed", "runs", "methods", "CPU kinds", "codes"])
    known = ~frame["CPU kinds"].str.contains("not recorded")
    one_kind = frame[known & (frame["CPU kinds"].str.count("; ") == 0) & (frame["codes"] == 1)]
    return {"n_seeds_recorded": len(frame), "n_seeds_one_kind": len(one_kind)}, frame


def threshold_free_lead(prim: pd.DataFrame, rec: Recorded) -> dict:
    """How much of a lead over FixMatch a threshold-free acceptance already gets:
    FlexMatch (which on the primary grid never leaves its warm-up, so it accepts
    nearly every face) − FixMatch, beside DTA+SNL − FixMatch, with each method's
    share of unlabeled faces accepted. Exploration, outside the planned family."""
    values = acceptance_values(acceptance(rec, prim), "lead_accept")
    # two decimals, as the planned family's: an interval whose end rounds to +0.0 at one
    # decimal would read as holding 0 beside a verdict that it excludes it
    for key, (a, b) in (("lead_flex_fix", ("FlexMatch", "FixMatch")), ("lead_snl_fix", ("DTA+SNL", "FixMatch")),
                        ("lead_snl_flex", ("DTA+SNL", "FlexMatch"))):
        values |= grid_tables.pair_values(key, prim, a, b, spec="+.2f")
    return values


def bench_costs(path: str | Path) -> dict:
    """What a training step of each method costs, from one ``ssfer bench`` run on
    this profile's network and batch (every method in one process, taking turns,
    so the ratios hold whatever else the machine ran): the glue values
    ``bench_fix`` (FixMatch / supervised), ``bench_snl`` (DTA+SNL / supervised),
    ``bench_where`` and the table; "—" and an empty table where none is recorded."""
    import json

    file = repo_path(path)
    empty = {"values": {"bench_fix": "—", "bench_snl": "—", "bench_where": "not measured yet"},
             "table": pd.DataFrame()}
    if not file.is_file():
        return empty
    try:
        record = json.loads(file.read_text())
        ts = record["bench"]["train_step"]
        seconds = ts["step_seconds"]
    except (ValueError, KeyError) as e:
        raise ConfigError(f"{file}: not an `ssfer bench --json` record ({type(e).__name__}: {e})") from None
    fix = ts["ratio_fixmatch_over_supervised"]
    snl = fix * ts["ratio_dta_snl_over_fixmatch"]
    names = {"supervised": "supervised", "fixmatch": "FixMatch", "dta_snl": "DTA+SNL"}
    frame = pd.DataFrame([{"method": names.get(a, a), "steps per second": 1 / s,
                           "× supervised": s / seconds["supervised"]} for a, s in seconds.items()])
    where = (f"{ts['model']} at {ts['size']} px, {ts['batch_labeled']} labeled and {ts['batch_unlabeled']} "
             f"unlabeled faces per step, {ts['rounds']} interleaved rounds on {record.get('cpu', 'a CPU')}, "
             f"{ts['threads']} thread")
    return {"values": {"bench_fix": tables.num(fix, ".2f"), "bench_snl": tables.num(snl, ".2f"),
                       "bench_where": where}, "table": frame}
