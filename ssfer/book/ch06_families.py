"""Chapter 06 read family-wise: each planned family of ``results/grid.yaml`` with
its Holm-adjusted verdicts, the bottom line the landing page and the README open
with, the label budgets and the paper's claim."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ssfer.book import grid_tables, tables, verdicts
from ssfer.book.ch06_real_faces import CONTROL, Recorded
from ssfer.errors import ConfigError

# glue keys of each label-budget family of results/grid.yaml: (its comparisons' keys, the prefix)
BUDGET_KEYS = {"25 % labeled": (["snl_fix", "snl_sup"], "b25"), "5 % labeled": (["snl_fix", "snl_sup"], "b5"),
               "1 % labeled": (["snl_fix", "snl_sup"], "b1"),
               "the paper's claim": (["b1", "b5", "b10", "b25"], "claim")}


@dataclass
class FamilyReading:
    """One planned family as the chapter reads it: its comparisons (None where a
    side has no run yet), their Holm-adjusted p values and the table."""

    family: grid_tables.Family
    comparisons: list[verdicts.Comparison | None]
    adjusted: list[float]
    table: pd.DataFrame

    @property
    def labels(self) -> list[str]:
        return list(self.table["comparison"])

    @property
    def regime(self) -> str:
        return ", ".join(str(v) for v in self.family.where.values())


def read_families(rec: Recorded, metric: str = "accuracy (%)") -> list[FamilyReading]:
    """Every planned family of the grid, read family-wise (``grid_tables.family_table``)."""
    out = []
    for fam in rec.families:
        frame = grid_tables.family_table(rec.every, fam, metric, planned=rec.planned_keys)
        out.append(FamilyReading(fam, fam.comparisons(rec.every, metric), list(frame["Holm p"]), frame))
    return out


def family_values(reading: FamilyReading, keys: list[str], prefix: str) -> dict:
    """What the prose cites of each comparison of a family read family-wise:
    ``{prefix}_{key}_`` mean, low, high, n, p, holm (formatted) and fw (the
    family-wise verdict); ``keys`` names the comparisons in order."""
    values = {}
    for key, c, (_, row) in zip(keys, reading.comparisons, reading.table.iterrows()):
        p = c.paired if c is not None else None
        name = f"{prefix}_{key}"
        values |= {f"{name}_mean": tables.num(p.mean if p else None, "+.2f"),
                   f"{name}_low": tables.num(p.low if p else None, "+.2f"),
                   f"{name}_high": tables.num(p.high if p else None, "+.2f"),
                   f"{name}_n": p.n if p else 0, f"{name}_p": verdicts.p_text(row["p"]),
                   f"{name}_holm": verdicts.p_text(row["Holm p"]), f"{name}_fw": row["family-wise verdict"]}
    return values


def _clause(reading: FamilyReading, i: int, label: str | None = None) -> str:
    """Comparison ``i`` of a family in one clause: ``label`` (its name by default),
    its family-wise verdict, then the numbers it rests on."""
    row, c = reading.table.iloc[i], reading.comparisons[i]
    label = row["comparison"] if label is None else label
    if c is None or c.paired.n < verdicts.MIN_SEEDS:
        return f"{label}: {row['family-wise verdict']}"
    p = c.paired
    planned = int(row.get("planned seeds", 0) or 0)
    seeds = f"{p.n} of {planned} planned seeds so far" if p.n < planned else f"{p.n} seeds"
    return (f"{label}: {row['family-wise verdict']} ({p.mean:+.2f} points "
            f"[{p.low:+.2f}, {p.high:+.2f}], Holm p {verdicts.p_text(row['Holm p'])}, {seeds})")


def _sentence(reading: FamilyReading, rows: list[int]) -> str:
    """Comparisons ``rows`` of a family in one clause each (``_clause``)."""
    return "; ".join(_clause(reading, i) for i in rows)


def lead_by_budget(readings: list[FamilyReading], a: str = "DTA+SNL", b: str = "FixMatch") -> str:
    """``a − b`` at every label budget of the primary profile whose planned family
    holds it, fewest labels first (where a per-class threshold is expected to
    matter most), each read family-wise in its own family. True whatever the numbers."""
    found = []
    for reading in readings:
        where = reading.family.where
        if where.get("variant") != CONTROL or not str(where.get("budget", "")).endswith("% labeled"):
            continue
        for i, (x, y) in enumerate(reading.family.pairs):
            if x == {**where, "method": a} and y == {**where, "method": b}:
                found.append((str(where["budget"]), reading, i))
    if not found:
        return f"No planned family of a label budget holds {a} − {b}."
    found.sort(key=lambda f: labeled_percent(f[0]))
    clauses = [_clause(reading, i, f"at {budget}") for budget, reading, i in found]
    return f"{a} − {b}, read in each budget's own family: " + "; ".join(clauses) + "."


def headline(readings: list[FamilyReading]) -> str:
    """The bottom line in at most three sentences, each the family-wise reading of
    planned comparisons of the primary family (named first in the grid): the
    method against the baseline it changes, its parts, and what the unlabeled
    faces add over training on the labels alone. True whatever the numbers."""
    primary = readings[0] if readings else None
    if primary is None or not len(primary.table):
        return "No planned family is named in the grid yet."
    by = {(a["method"], b["method"]): i for i, (a, b) in enumerate(primary.family.pairs)}
    groups = [[by[k] for k in (("DTA+SNL", "FixMatch"),) if k in by],
              [by[k] for k in (("DTA", "FlexMatch"), ("DTA+SNL", "DTA")) if k in by],
              [by[k] for k in (("FixMatch", "supervised"), ("DTA+SNL", "supervised")) if k in by]]
    lead = f"On {primary.regime}, read family-wise (Holm at {verdicts.ALPHA:g}, margin {verdicts.amount(verdicts.MARGIN)}): "
    sentences = [_sentence(primary, g) for g in groups if g]
    return lead + ". ".join(s[0].upper() + s[1:] for s in sentences) + "."


def _budgets(names: list[str]) -> str:
    """Budgets as a reader says them: "1 %, 5 % and 10 % labeled", not each with its own "labeled"."""
    unit = " labeled"
    shared = all(n.endswith(unit) for n in names)
    bare = [n.removesuffix(unit) for n in names] if shared else list(names)
    listed = bare[0] if len(bare) == 1 else f"{', '.join(bare[:-1])} and {bare[-1]}"
    return listed + (unit if shared else "")


def claim_sentence(reading: FamilyReading | None) -> str:
    """Whether DTA+SNL at a label budget matches or passes supervised training with
    every label (the paper's claim family), plainly: "matches" only where the 95 %
    interval lies inside the margin, "passes" only where it scores higher
    family-wise. True whatever the numbers."""
    if reading is None:
        return "The grid names no family for the paper's claim."
    passes, matches, short, open_, missing = [], [], [], [], []
    for (a, _), c, q in zip(reading.family.pairs, reading.comparisons, reading.adjusted):
        budget = str(a.get("budget", "?"))
        if c is None or c.paired.n < verdicts.MIN_SEEDS:
            missing.append(budget)
            continue
        p = c.paired
        if q <= verdicts.ALPHA and p.mean > 0:
            passes.append(budget)
        elif -verdicts.MARGIN < p.low and p.high < verdicts.MARGIN:
            matches.append(budget)
        elif q <= verdicts.ALPHA:
            short.append(budget)
        else:
            open_.append(budget)
    if len(missing) == len(reading.family.pairs):
        return (f"No budget of the paper's claim has {verdicts.MIN_SEEDS} paired seeds of DTA+SNL and of supervised "
                "training with every label yet, so the runs cannot yet say whether DTA+SNL matches or passes it.")
    said = []
    if passes:
        said.append(f"DTA+SNL passes supervised training with every label at {_budgets(passes)}")
    if matches:
        said.append(f"it matches it, within {verdicts.amount(verdicts.MARGIN)}, at {_budgets(matches)}")
    if short:
        said.append(f"it falls short of it at {_budgets(short)}")
    if open_:
        said.append(f"the runs cannot tell at {_budgets(open_)}")
    if missing:
        said.append(f"{_budgets(missing)} {'is' if len(missing) == 1 else 'are'} not recorded yet"
                    f" (fewer than {verdicts.MIN_SEEDS} paired seeds)")
    if not passes and not matches:
        said.insert(0, f"At no budget{' recorded so far' if missing else ''} does DTA+SNL match or pass supervised "
                       "training with every label")
    text = "; ".join(said)
    return text[0].upper() + text[1:] + "."


def labeled_percent(budget: str) -> float:
    """The labeled share of a budget named "N % labeled", in %."""
    return float(str(budget).split(" ")[0])


def budget_runs(every: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The label-budget runs of the primary profile (FERPlus, no label smoothing):
    the fraction budgets with a numeric ``labeled (%)`` column, and the runs of
    supervised training with every label (the ceiling)."""
    rows = tables.select(every, **{"data set": "FERPlus", "variant": CONTROL})
    fractions = rows[rows["budget"].str.endswith("% labeled")].copy()
    fractions["labeled (%)"] = fractions["budget"].map(labeled_percent).astype(float)
    ceiling = rows[(rows["budget"] == "all labels") & (rows["method"] == "supervised")]
    return fractions, ceiling


def budget_progress(every: pd.DataFrame, planned_keys: pd.DataFrame) -> dict:
    """How far the label-budget grid is recorded: the runs planned on the primary
    profile at a budget other than the primary one's, or with every label
    (``n_budget_planned``), how many of them are recorded (``n_budget_runs``) and
    how many of those are supervised with every label (``n_ceiling``)."""
    def budget_grid(rows: pd.DataFrame) -> pd.DataFrame:
        rows = tables.select(rows, **{"data set": "FERPlus", "variant": CONTROL})
        return rows[rows["budget"] != grid_tables.PRIMARY["budget"]]

    planned = set(budget_grid(planned_keys)["run"])
    done = budget_grid(every)
    done = done[done["run"].isin(planned)]
    return {"n_budget_runs": len(done), "n_budget_planned": len(planned),
            "n_ceiling": int((done["budget"] == "all labels").sum())}


ACCEPTED = "accepted (%)"   # a run's mean share of the unlabeled batch that passed its threshold


def accepted_by_run(rec: Recorded, runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with each run's share accepted over training (``ACCEPTED``; NaN
    for supervised training, which takes no pseudo label)."""
    return runs.assign(**{ACCEPTED: [100 * tables.accepted_share(rec.records[r]) for r in runs["run"]]})


def acceptance_by_budget(classes: pd.DataFrame, methods=("FixMatch", "DTA+SNL")) -> str:
    """Each budget's share accepted by ``methods`` (mean over the seeds), in the
    order of ``budget_classes``' table (fewest labels first): a lead over FixMatch
    is read beside how many more unlabeled faces the other method trained on."""
    rows = classes[classes["method"].isin(methods) & classes[ACCEPTED].notna()] if ACCEPTED in classes \
        else classes.iloc[:0]
    if not len(rows):
        return "No run of a label budget logged what its threshold accepted."
    said = []
    for budget, shares in rows.groupby("budget", sort=False):
        shares = shares.set_index("method")[ACCEPTED]
        said.append(f"at {budget}, " + " and ".join(f"{m} {shares[m]:.1f} %" for m in methods if m in shares))
    return ("Share of the unlabeled faces that passed the threshold over training (mean over the seeds): "
            + "; ".join(said) + ".")


def budget_classes(fractions: pd.DataFrame, classes: pd.DataFrame, ceiling: pd.DataFrame,
                   of=("fear",)) -> pd.DataFrame:
    """Mean class accuracy, the share accepted where ``fractions`` holds it
    (``accepted_by_run``) and each class of ``of``'s recall per budget and method
    (mean over the seeds, with the seeds and, for a class, its test faces), the
    ceiling's row last."""
    every = pd.concat([fractions, ceiling.assign(**{"labeled (%)": 100.0})], ignore_index=True)
    shares = {ACCEPTED: (ACCEPTED, "mean")} if ACCEPTED in every else {}
    out = every.groupby(["budget", "labeled (%)", "method"], sort=False).agg(
        seeds=("seed", "size"), **{"mean class accuracy (%)": ("mean class accuracy (%)", "mean")},
        **shares).reset_index()
    for cls in of:
        sub = classes[(classes["class"] == cls) & classes["run"].isin(every["run"])]
        rec = sub.merge(every[["run", "labeled (%)"]], on="run").groupby(["labeled (%)", "method"]).agg(
            **{f"{cls} recall (%)": ("recall (%)", "mean"), f"{cls} test faces": ("test faces", "max")})
        out = out.merge(rec.reset_index(), on=["labeled (%)", "method"], how="left")
    return out.sort_values(["labeled (%)", "method"], kind="stable").drop(columns="labeled (%)")


@dataclass
class BudgetSection:
    """What the label-budget section shows: its glued values, the fraction runs
    and the ceiling (the figure), the budget families and the paper's claim, read
    family-wise, and mean class accuracy and fear recall per budget."""

    values: dict
    fractions: pd.DataFrame
    ceiling: pd.DataFrame
    readings: list[FamilyReading]
    classes: pd.DataFrame


def budget_section(rec: Recorded, readings: list[FamilyReading]) -> BudgetSection:
    """The label-budget section from the recorded runs at any stage of its grid,
    none recorded to all: ``readings`` is ``read_families(rec)``."""
    fractions, ceiling = budget_runs(rec.every)
    fractions = accepted_by_run(rec, fractions)
    claim = next((r for r in readings if r.family.name == "the paper's claim"), None)
    values = {"claim": claim_sentence(claim), "budget_lead": lead_by_budget(readings)} | \
        budget_progress(rec.every, rec.planned_keys)
    budgets = [r for r in readings if r.family.name in BUDGET_KEYS]
    for reading in budgets:
        values |= family_values(reading, *BUDGET_KEYS[reading.family.name])
    classes = budget_classes(fractions, grid_tables.class_table(rec.records, rec.planned), ceiling)
    values["budget_accept"] = acceptance_by_budget(classes)
    return BudgetSection(values, fractions, ceiling, budgets, classes)


README_START = "<!-- headline:"
README_END = "<!-- /headline -->"


def readme_with_headline(text: str, line: str) -> str:
    """``text`` (the README) with its headline block replaced by ``line``: the block
    runs from the line starting ``README_START`` to ``README_END``; a README
    without one is a ``ConfigError`` naming the markers."""
    lines = text.splitlines(keepends=True)
    try:
        start = next(i for i, t in enumerate(lines) if t.startswith(README_START))
        end = next(i for i, t in enumerate(lines) if i > start and t.startswith(README_END))
    except StopIteration:
        raise ConfigError(f"the README has no headline block ({README_START} ... {README_END})") from None
    return "".join(lines[:start + 1]) + line.rstrip("\n") + "\n" + "".join(lines[end:])
