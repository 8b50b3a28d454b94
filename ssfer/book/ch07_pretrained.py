"""What the chapter "With a pretrained backbone" (notebooks/07_pretrained.ipynb)
reads off the recorded pretrainings and runs (issue 32): the pretrainings and
their validation kNN curves, the gate named before it was measured, the planned
family on the pretrained start and its interactions with the start, and what
changed against the from-scratch verdicts."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ssfer.book import ch06_families as family_wise
from ssfer.book import ch06_real_faces as ch06
from ssfer.book import pretraining_grid, recording, tables, verdicts
from ssfer.book.grid_tables import PRIMARY
from ssfer.pretrain.record import PretrainRecord

VARIANT = "BYOL-pretrained"      # the grid variant of the runs that fine-tune from the final pretraining
FAMILY = "pretrained"            # results/grid.yaml's planned families on the pretrained start
INTERACTIONS = "pretrained against from scratch"
# the glue stems of each family's comparisons, in the grid's order
FAMILY_KEYS = {FAMILY: (["snl_fix", "fix_sup", "snl_sup"], "pt"),
               INTERACTIONS: (["snl_fix", "fix_sup"], "ix")}
# The gate, named in results/grid.yaml before it is measured: supervised on 10 % of
# the labels, pretrained start against from scratch, seeds 2-4, validation accuracy;
# it passes at a mean paired difference of at least GATE_POINTS. Its seeds are not
# the fine-tuning settings' (TUNING_SEEDS): the setting chosen as the best of four
# on seeds 0 and 1 would flatter a gate read on the same runs.
GATE_POINTS = 1.0
GATE_SEEDS = (2, 3, 4)
GATE_METRIC = "val accuracy (%)"
# The fine-tuning settings, tried before the gate on the pretrained start: grid
# variants "BYOL fine-tuning: SETTING", supervised on the primary budget at
# TUNING_SEEDS, chosen on validation accuracy alone (results/grid.yaml).
TUNING = "BYOL fine-tuning: "
TUNING_SEEDS = (0, 1)
FAMILY_SEEDS = tuple(range(10))           # the primary grid's seeds, so every seed pairs with its run from scratch
PRIMARY_NAME = "ferplus_fraction_10_ls0"   # the primary grid's run folders' stem, which the gate's extend


@dataclass
class Pretrained:
    """The recorded pretrainings beside the grid's, and the recorded runs (chapter 06's reading)."""

    rec: ch06.Recorded
    planned: dict[str, pretraining_grid.PlannedPretraining]
    pretrainings: dict[str, PretrainRecord] = field(default_factory=dict)


def load(results_dir: str | Path, grid: str | Path) -> Pretrained:
    _, planned = recording.read_grid(ch06.repo_path(grid))
    return Pretrained(ch06.load(results_dir, grid), planned, pretraining_grid.load_all(ch06.repo_path(results_dir)))


def pretraining_table(pre: Pretrained) -> pd.DataFrame:
    """One row per pretraining the grid names (and any other recorded): its crop
    floor, lr and epochs, the validation kNN accuracy at the end and at its best
    probe, and its CPU hours; "not recorded yet" where it has no record."""
    rows = []
    for name in [*pre.planned, *(n for n in pre.pretrainings if n not in pre.planned)]:
        rec = pre.pretrainings.get(name)
        if rec is None:
            rows.append({"pretraining": name, "recorded": "not recorded yet"})
            continue
        c, curve = rec.config, rec.probe_curve()
        best = max(curve, key=lambda r: r["probe_accuracy"]) if curve else None
        rows.append({"pretraining": name, "recorded": "yes", "crop floor": c.views.crop_scale[0], "lr": c.train.lr,
                     "epochs": c.train.epochs, "kNN accuracy (%)": 100 * rec.summary["probe_accuracy"],
                     "best kNN accuracy (%)": 100 * best["probe_accuracy"] if best else math.nan,
                     "at epoch": best["epoch"] if best else math.nan,
                     "CPU hours": rec.summary["cpu_seconds"] / 3600})
    return pd.DataFrame(rows, columns=["pretraining", "recorded", "crop floor", "lr", "epochs", "kNN accuracy (%)",
                                       "best kNN accuracy (%)", "at epoch", "CPU hours"])


def probe_curves(pre: Pretrained) -> pd.DataFrame:
    """The validation kNN probe of every recorded pretraining, one row per probe:
    pretraining, epoch, kNN accuracy (%) and the CPU hours spent by then."""
    rows = [{"pretraining": name, "epoch": r["epoch"], "kNN accuracy (%)": 100 * r["probe_accuracy"],
             "CPU hours": r["cpu_seconds"] / 3600}
            for name, rec in pre.pretrainings.items() for r in rec.probe_curve()]
    return pd.DataFrame(rows, columns=["pretraining", "epoch", "kNN accuracy (%)", "CPU hours"])


def pretraining_values(pre: Pretrained) -> dict:
    """What the prose cites of the pretrainings: how many are recorded of those
    named, and a sentence on the best by final validation kNN accuracy."""
    table = pretraining_table(pre)
    done = table[table["recorded"] == "yes"]
    values = {"n_pretrainings": len(done), "n_pretrainings_planned": len(pre.planned)}
    if done.empty:
        return values | {"best_pretraining": "No pretraining is recorded yet."}
    best = done.loc[done["kNN accuracy (%)"].idxmax()]
    return values | {"best_pretraining": f"The best recorded so far is {best['pretraining']}, at "
                                         f"{best['kNN accuracy (%)']:.1f} % validation kNN accuracy after "
                                         f"{best['CPU hours']:.1f} CPU hours ({best['epochs']:.0f} epochs)."}


def pilot_values(pre: Pretrained) -> dict:
    """``pilot_rule``: what the pilot's rule gives, once every pilot the grid names
    is recorded, and whether the final pretraining the grid names is that
    (``pretraining_grid.pilot_reading``)."""
    return {"pilot_rule": pretraining_grid.pilot_reading(pre.planned, pre.pretrainings,
                                                         ch06.repo_path("configs").parent)}


def tuning(every: pd.DataFrame, planned: list[recording.Planned] = ()) -> tuple[dict, pd.DataFrame]:
    """The fine-tuning settings tried (``TUNING`` variants; those of the grid
    ``planned`` too, before their runs): one row per setting with its seeds of
    ``TUNING_SEEDS`` recorded and their mean validation accuracy, best first, and
    the choice (``tuning_choice``): the best mean, once every setting has every
    seed. The test split's scores are not read."""
    where = {k: v for k, v in PRIMARY.items() if k != "variant"}
    rows = tables.select(every, **where, method="supervised")
    rows = rows[rows["variant"].str.startswith(TUNING) & rows["seed"].isin(TUNING_SEEDS)]
    settings = list(dict.fromkeys([p.variant for p in planned if p.variant.startswith(TUNING)]
                                  + list(rows["variant"])))
    frame = pd.DataFrame([{"setting": v.removeprefix(TUNING), "seeds": int((rows["variant"] == v).sum()),
                           "val accuracy (%)": rows.loc[rows["variant"] == v, GATE_METRIC].mean()}
                          for v in settings], columns=["setting", "seeds", "val accuracy (%)"])
    frame = frame.sort_values("val accuracy (%)", ascending=False, na_position="last", kind="stable")
    frame = frame.reset_index(drop=True)
    seeds = " and ".join(map(str, TUNING_SEEDS))
    complete = frame[frame["seeds"] == len(TUNING_SEEDS)]
    if frame.empty or len(complete) < len(frame):
        said = (f"none yet ({len(complete)} of {len(frame)} settings have their runs at seeds {seeds})"
                if len(frame) else "none yet (the grid names no setting to try yet)")
        return {"tuning_choice": said, "n_tuning_settings": len(frame)}, frame
    best = frame.iloc[0]
    said = f"{best['setting']}, at {best['val accuracy (%)']:.2f} % mean validation accuracy over seeds {seeds}"
    if len(frame) > 1:
        second = frame.iloc[1]
        said += f" (the next, {second['setting']}: {second['val accuracy (%)']:.2f} %)"
    return {"tuning_choice": said, "n_tuning_settings": len(frame)}, frame


# the overrides every run of a group holds by its algorithm and seed, not by its `set`
_PER_RUN = ("algo.name", "split.seed", "train.seed")


def gate_group(every: pd.DataFrame, planned: list[recording.Planned]) -> str | None:
    """Once the fine-tuning setting is chosen and the grid names no run of
    ``VARIANT`` yet, the gate's group to name in ``results/grid.yaml`` before it
    runs (YAML, one list item of ``groups``): supervised at ``GATE_SEEDS`` with the
    chosen setting's config, ``set`` and pretraining. None otherwise."""
    if any(p.variant == VARIANT for p in planned):
        return None
    _, frame = tuning(every, planned)
    if frame.empty or (frame["seeds"] < len(TUNING_SEEDS)).any():
        return None
    chosen = TUNING + frame.iloc[0]["setting"]
    group = next((p for p in planned if p.variant == chosen), None)
    if group is None:     # recorded but no longer in the grid: its setting cannot be read off the grid
        return None
    return _group_yaml(group, ["supervised"], GATE_SEEDS)


def family_groups(every: pd.DataFrame, planned: list[recording.Planned]) -> str | None:
    """Once the gate passes and the grid names no other method on ``VARIANT``,
    the planned family's groups to name before their runs (YAML list items of
    ``groups``): supervised at the ``FAMILY_SEEDS`` the gate does not hold, and
    FixMatch and DTA+SNL at all of them, each with the gate's setting. Supervised
    at ``TUNING_SEEDS`` is then the chosen setting's own tuning runs again (the
    same config: the run cache replays them). None otherwise."""
    ours = [p for p in planned if p.variant == VARIANT]
    if not ours or any(p.overrides.get("algo.name") != "supervised" for p in ours):
        return None
    mean = gate_mean(every)
    if mean is None or mean < GATE_POINTS:
        return None
    rest = [s for s in FAMILY_SEEDS if s not in GATE_SEEDS]
    return "\n".join([_group_yaml(ours[0], ["supervised"], rest),
                      _group_yaml(ours[0], ["fixmatch", "dta_snl"], FAMILY_SEEDS)])


def _group_yaml(like: recording.Planned, algorithms: list[str], seeds) -> str:
    """A grid group of ``VARIANT`` with ``like``'s config, ``set`` and pretraining."""
    # JSON values are YAML flow values: strings quoted, lists and floats as the grid reads them
    sets = ", ".join(f"{k}: {json.dumps(v)}" for k, v in like.overrides.items() if k not in _PER_RUN)
    return "\n".join([
        f'  - name: "{PRIMARY_NAME}_byolpt_{{algorithm}}_s{{seed}}"',
        f"    variant: {VARIANT}",
        f"    config: {like.config}",
        f"    set: {{{sets}}}",
        f"    pretraining: {like.pretraining}",
        f"    algorithms: [{', '.join(algorithms)}]",
        f"    seeds: [{', '.join(map(str, seeds))}]"])


def gate(every: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    """The gate: supervised on the primary budget, pretrained start against from
    scratch, at ``GATE_SEEDS``, on validation accuracy; its table (one row per
    seed both hold) and its values (``gate_mean``, ``gate_n``, ``gate_verdict``:
    passes, fails or not measured yet)."""
    where = {k: v for k, v in PRIMARY.items() if k != "variant"}
    pre = tables.select(every, **where, variant=VARIANT, method="supervised")
    scratch = tables.select(every, **where, variant=PRIMARY["variant"], method="supervised")
    a, b = _by_seed(pre), _by_seed(scratch)
    seeds = sorted(set(a) & set(b))
    frame = pd.DataFrame([{"seed": s, "pretrained (%)": a[s], "from scratch (%)": b[s], "difference": a[s] - b[s]}
                          for s in seeds], columns=["seed", "pretrained (%)", "from scratch (%)", "difference"])
    rule = f"at least {verdicts.amount(GATE_POINTS)} of validation accuracy, mean over seeds {', '.join(map(str, GATE_SEEDS))}"
    if len(seeds) < len(GATE_SEEDS):
        return {"gate_mean": "—", "gate_n": len(seeds), "gate_rule": rule,
                "gate_verdict": f"not measured yet ({len(seeds)} of {len(GATE_SEEDS)} paired seeds recorded)"}, frame
    mean = float(frame["difference"].mean())
    said = "passes" if mean >= GATE_POINTS else "fails"
    return {"gate_mean": tables.num(mean, "+.2f"), "gate_n": len(seeds), "gate_rule": rule,
            "gate_verdict": f"the pretrained start {said} the gate ({mean:+.2f} points, {rule})"}, frame


def _by_seed(rows: pd.DataFrame) -> dict[int, float]:
    """The gate's seeds' validation scores in ``rows``; none where the runs were
    tabled without validation scores."""
    if GATE_METRIC not in rows:
        return {}
    return {int(s): v for s, v in zip(rows["seed"], rows[GATE_METRIC]) if s in GATE_SEEDS and math.isfinite(v)}


def gate_mean(every: pd.DataFrame) -> float | None:
    """The gate's mean paired difference (points), or None before all its seeds are recorded."""
    _, frame = gate(every)
    return float(frame["difference"].mean()) if len(frame) == len(GATE_SEEDS) else None


def gate_failed(every: pd.DataFrame) -> bool:
    """Whether the gate is measured and fails: the planned family is then not run."""
    mean = gate_mean(every)
    return mean is not None and mean < GATE_POINTS


def gate_line(rec: ch06.Recorded) -> str | None:
    """What ``ssfer results family`` says under the tables when the grid names this
    chapter's families: the gate they wait on and, once it has failed, that their
    comparisons without runs are not run rather than still to come (as the
    chapter says, ``family_values``). None when the grid names none of them."""
    if not any(f.name in FAMILY_KEYS for f in rec.families):
        return None
    verdict = gate(rec.every)[0]["gate_verdict"]
    if gate_failed(rec.every):
        return (f"The gate of the pretrained families: {verdict}. So their comparisons without runs are not run, "
                f"and any with runs are exploration.")
    return f"The gate of the pretrained families, which run only once it passes: {verdict}."


NOT_RUN = "not run: the pretrained start failed the gate"
NOTHING_YET = ("No comparison on the pretrained start has its runs yet, so nothing can be said yet about what "
               "pretraining changes")


def readings(pre: Pretrained) -> dict[str, family_wise.FamilyReading]:
    """This chapter's planned families and the primary family from scratch they
    are read against, read family-wise, by name: read once, then handed to
    ``family_values``, ``changed`` and ``bottom_line``."""
    keep = {*FAMILY_KEYS, "primary"}
    return {r.family.name: r for r in family_wise.read_families(pre.rec) if r.family.name in keep}


def _measured(reading: family_wise.FamilyReading) -> list[bool]:
    """Which of a family's comparisons have the paired seeds a verdict needs."""
    return [c is not None and c.paired.n >= verdicts.MIN_SEEDS for c in reading.comparisons]


def family_values(found: dict[str, family_wise.FamilyReading], failed: bool = False) -> dict:
    """The glue values of each of this chapter's families (``pt_*``, ``ix_*``).
    Once the gate has ``failed``, a comparison without runs says it was not run
    (it never will be), not that it is not recorded yet."""
    values = {}
    for name, (keys, prefix) in FAMILY_KEYS.items():
        if name in found:
            values |= family_wise.family_values(found[name], keys, prefix)
            if failed:
                values |= {f"{prefix}_{k}_fw": NOT_RUN for k in keys if values[f"{prefix}_{k}_n"] == 0}
    return values


def changed(pre: Pretrained, found: dict[str, family_wise.FamilyReading] | None = None,
            failed: bool | None = None) -> tuple[str, pd.DataFrame]:
    """What the pretrained start changed: each comparison of its family beside the
    same comparison's family-wise verdict from scratch (the primary family), as a
    table, and a sentence that counts the verdicts kept and changed. True
    whatever the numbers. ``found`` (``readings``) and ``failed``
    (``gate_failed``) are read here unless the caller has them already."""
    found = readings(pre) if found is None else found
    failed = gate_failed(pre.rec.every) if failed is None else failed
    ours, primary = found.get(FAMILY), found.get("primary")
    columns = ["comparison", "from scratch", "pretrained"]
    if ours is None or primary is None:
        return "The grid names no pretrained family beside the primary one.", pd.DataFrame(columns=columns)
    scratch = dict(zip(primary.labels, (_verdict(row) for _, row in primary.table.iterrows())))
    frame = pd.DataFrame([{"comparison": label, "from scratch": scratch.get(label, "not in the primary family"),
                           "pretrained": _verdict(row)}
                          for label, (_, row) in zip(ours.labels, ours.table.iterrows())], columns=columns)
    measured = _measured(ours)
    if not any(measured):
        if failed:
            frame["pretrained"] = [NOT_RUN if v.startswith("not recorded") else v for v in frame["pretrained"]]
            # the gate's numbers stand beside this sentence (gate_verdict), here and on the landing page
            return ("The pretrained start failed the gate, so the planned family on it was not run: at this "
                    "scale, self-supervised pretraining on the training faces does not give a better start, and "
                    "the verdicts from scratch are the book's only ones."), frame
        return f"{NOTHING_YET}; the table gives the verdicts from scratch they will be read against.", frame
    # the verdicts themselves, without the interim mark that only counts seeds
    before = dict(zip(primary.labels, primary.table["family-wise verdict"]))
    after = zip(ours.labels, ours.table["family-wise verdict"], measured)
    moved = [label for label, verdict, m in after if m and before.get(label) != verdict]
    n = sum(measured)
    said = (f"Of the {n} comparisons measured on the pretrained start, {n - len(moved)} keep the "
            f"family-wise verdict they have from scratch and {len(moved)} change it")
    said += f": {', '.join(moved)}." if moved else "."
    if failed:
        said = f"The pretrained start failed the gate, so these runs are exploration, not the planned family. {said}"
    return said, frame


def bottom_line(pre: Pretrained, found: dict[str, family_wise.FamilyReading] | None = None,
                failed: bool | None = None) -> str:
    """The pretrained regime's bottom line for the landing page: its planned
    family's headline (``ch06_families.headline``, the verdicts family-wise) once
    a comparison is measured, then what changed against the verdicts from scratch
    (``changed``, given the same ``found`` and ``failed``). True whatever the numbers."""
    found = readings(pre) if found is None else found
    said, _ = changed(pre, found, failed)
    ours = found.get(FAMILY)
    if ours is None or not any(_measured(ours)):
        # the landing page has no table of verdicts beside it to point to
        return f"{NOTHING_YET}." if said.startswith(NOTHING_YET) else said
    return f"{family_wise.headline([ours])} {said}"


INTERIM = " (interim: {} of {} planned seeds)"


def _verdict(row: pd.Series) -> str:
    """A family table row's verdict, marked interim while it has fewer paired
    seeds than the grid plans."""
    planned = int(row.get("planned seeds", 0) or 0)
    seeds = int(row["seeds"])
    return row["family-wise verdict"] + (INTERIM.format(seeds, planned) if 0 < seeds < planned else "")
