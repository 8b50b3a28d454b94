"""The label-budget chapters (04 RAF-DB, 05 AffectNet): method comparisons at
each budget, a second test set, and a page's runs beside the published table.

Both chapters run the same grid (supervised, FixMatch and DTA+SNL at each
budget and seed) under a different labeling protocol: Ada-CM's label totals on
RAF-DB, SSFER's labeled fractions on AffectNet. Everything after the protocol
is the same analysis, so it lives here once: a change to how a budget chapter
compares, tabulates or draws is made in one place and both pages follow.

A *row* is one budget as the run table spells it: ``100`` in the ``labels``
column of chapter 04, ``"1 %"`` in the ``labeled share`` column of chapter 05.
Runs are keyed ``(row, method, seed)``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ssfer.algo.compose import display_name
from ssfer.book import tables, verdicts
from ssfer.book.runs import page_config
from ssfer.config import Config

__all__ = ["BUDGET_METHODS", "CROSS_COLUMNS", "PAIRS", "SCORE_KEYS", "SHORT", "SecondTestSet", "beside_published", "compare_at_each", "cross_table", "cross_test", "data_overrides", "glue_cross", "glue_means", "grid_configs", "pct", "require_data_root", "second_test_set"]

# the algorithm's registry name -> its name on the page (its recipe's label), in the pages' order
BUDGET_METHODS = {name: display_name(name) for name in ("supervised", "fixmatch", "dta_snl")}
# a method's page name -> the short form in glue keys ("acc_snl_low"): the book's
# short forms everywhere, "snl" for DTA+SNL and "dta" for DTA alone
SHORT = {"supervised": "sup", "FixMatch": "fix", "DTA+SNL": "snl"}
# the comparisons made at every budget: (a, b, key), read as "a − b"
PAIRS = (("DTA+SNL", "FixMatch", "fix"), ("DTA+SNL", "supervised", "sup"), ("FixMatch", "supervised", "fixsup"))
# the two test scores compared: accuracy weighs the common classes, mean class accuracy every class alike
SCORE_KEYS = {"accuracy (%)": "acc", "mean class accuracy (%)": "mca"}
CROSS_COLUMNS = ["method", "seed", "own test set (%)", "second test set (%)", "images", "left out"]


def pct(fraction: float) -> str:
    """A labeled fraction as the AffectNet page names it: ``0.01`` -> ``"1 %"``."""
    return f"{100 * fraction:g} %"


# ------------------------------------------------------------------ the runs
def require_data_root(P: Any, example: str) -> bool:
    """Whether the page runs on real data; a real data set without ``data_root``
    is refused here, naming the parameter, rather than deep inside the loader.

    ``example`` completes "e.g. -p data_root ..." with the data set's usual folder."""
    real = P.dataset != "synthfer"
    if real and P.data_root is None:
        raise ValueError(f"parameter 'data_root': dataset={P.dataset!r} needs the folder the data set was "
                         f"unpacked to, e.g. -p data_root {example}")
    return real


def data_overrides(P: Any, **options: Any) -> dict[str, Any]:
    """The data and backbone part of every run's config: SynthFER at ``P.difficulty``,
    or the real data set's whole train and test splits at ``P.data_root``
    (``options``, if any, go to its loader: AffectNet's ``num_classes``)."""
    data: dict[str, Any] = {"data__channels": P.channels, "model__pretrained_path": P.pretrained_path}
    if P.dataset != "synthfer":
        data.update(data__dataset=P.dataset, data__root=P.data_root, data__n_train=None, data__n_test=None)
        if options:
            data["data__options"] = dict(options)
    else:
        data.update(data__difficulty=P.difficulty)
    return data


def grid_configs(P: Any, rows: Mapping[Any, Mapping[str, Any]], data: Mapping[str, Any]
                 ) -> dict[tuple[Any, str, int], Config]:
    """Every method at every row and seed, keyed ``(row, method, seed)`` in that order.

    ``rows`` maps a row to its split overrides (``{"split__protocol": "fraction",
    "split__fraction": 0.01}``). The per-class budget of ``book_config`` is unused,
    since the protocol sets its own labels, but stays at the book's 10 so that the
    config, and hence the cached run, is the one every other page would ask for."""
    return {(row, label, s): page_config(P, seed=s, labels_per_class=10, algo__name=algo, train__progress=False,
                                         **split, **data)
            for row, split in rows.items() for algo, label in BUDGET_METHODS.items() for s in P.seeds}


# ------------------------------------------------------------------ comparisons at each budget
def compare_at_each(runs: pd.DataFrame, by: str, rows: Sequence[Any], unit: str
                    ) -> dict[tuple[Any, str, str], verdicts.Comparison]:
    """The three paired comparisons (``PAIRS``) on both scores at every row, keyed
    ``(row, "acc" | "mca", "fix" | "sup" | "fixsup")``; each is named
    ``"<score>, <row> <unit>"`` ("accuracy (%), 100 labels") for tables and figures.

    Only runs of the same seed are paired: at a seed, the methods share the labeled split."""
    out = {}
    for row in rows:
        for col, short in SCORE_KEYS.items():
            for a, b, key in PAIRS:
                out[row, short, key] = verdicts.compare(runs, a, b, col, name=f"{col}, {row} {unit}", **{by: row})
    return out


def glue_means(glue: Callable, runs: pd.DataFrame, by: str, at: Mapping[str, Any],
               comparisons: Mapping[tuple[Any, str, str], verdicts.Comparison], scores: Sequence[str] = ("acc",)
               ) -> None:
    """Glue what the prose argues from at the rows named in ``at`` ({"low": 100, "top": 400}):
    each method's mean over the seeds of the ``scores`` ("acc", "mca") as ``acc_snl_low``,
    and every comparison of ``compare_at_each`` as ``fix_acc_low_mean`` and so on
    (``verdicts.glue_comparison``)."""
    columns = {short: col for col, short in SCORE_KEYS.items()}
    mean = runs.groupby([by, "method"])[list(SCORE_KEYS)].mean()
    for key, row in at.items():
        for method, mk in SHORT.items():
            for score in scores:
                glue(f"{score}_{mk}_{key}", float(mean.loc[(row, method), columns[score]]), display=False)
        for _, _, pair in PAIRS:
            for short in SCORE_KEYS.values():
                verdicts.glue_comparison(glue, f"{pair}_{short}_{key}", comparisons[row, short, pair])


# ------------------------------------------------------------------ the published numbers
def beside_published(published: pd.DataFrame, runs: pd.DataFrame, by: str, setting: str, P: Any, where: str
                     ) -> pd.DataFrame:
    """The published rows, then this page's: each method's mean test accuracy over the
    seeds at each row, named by backbone and whether it was pre-trained, so that a
    reader never takes a SynthFER number for a published one.

    ``setting`` is formatted per row with ``where`` and ``row``
    ("{where}, {row} labels (Ada-CM row)")."""
    origin = f"{P.model}, pre-trained" if P.pretrained_path else f"{P.model}, from scratch"
    ours = (runs.groupby([by, "method"], sort=False)["accuracy (%)"].mean().reset_index()
            .assign(method=lambda d: d["method"] + ", " + origin,
                    setting=lambda d: d[by].map(lambda row: setting.format(where=where, row=row)),
                    source=f"this page, mean of {len(P.seeds)} seed(s)"))
    return pd.concat([published, ours[["method", "setting", "accuracy (%)", "source"]]], ignore_index=True)


# ------------------------------------------------------------------ another test set
def cross_test(record: Any, dataset: str, root: str | None, options: dict | None = None,
               device: str = "auto") -> dict:
    """``ssfer.evaluate.evaluate_run`` with the CPU thread count the run trained
    with, so a re-run gives the same numbers whatever the kernel's default."""
    import torch

    from ssfer.evaluate import evaluate_run

    before = torch.get_num_threads()
    if record.config.train.threads:
        torch.set_num_threads(record.config.train.threads)
    try:
        return evaluate_run(record.run_dir, dataset, root, "test", options=options, device=device)
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class SecondTestSet:
    """A test set no run trained on: a data set, its folder (None for SynthFER), its loader's options."""

    dataset: str
    root: str | None
    name: str                    # for the prose and the comparison ("SynthFER at difficulty 1")
    options: dict[str, Any] = field(default_factory=dict)


def second_test_set(P: Any) -> SecondTestSet | None:
    """The page's second test set, from ``cross_dataset``, ``cross_root`` and ``cross_difficulty``.

    SynthFER pages default to a harder SynthFER draw (seed 1, ``n_test`` images) that no
    run has seen; real-data pages have none unless ``cross_dataset`` names one, and a
    real second data set needs its folder."""
    if P.cross_dataset is None and P.dataset != "synthfer":
        return None
    if P.cross_dataset in (None, "synthfer"):
        return SecondTestSet("synthfer", None, f"SynthFER at difficulty {P.cross_difficulty:g}",
                             {"n": P.n_test, "seed": 1, "difficulty": P.cross_difficulty})
    if P.cross_root is None:
        raise ValueError(f"parameter 'cross_root': cross_dataset={P.cross_dataset!r} needs its folder")
    return SecondTestSet(P.cross_dataset, P.cross_root, f"{P.cross_dataset} test")


def cross_table(records: Mapping[tuple[Any, str, int], Any], row: Any, test_set: SecondTestSet | None,
                device: str = "auto", test: Callable | None = None) -> pd.DataFrame:
    """Every run at ``row`` tested on its own test set and on ``test_set``: one row per run
    with both accuracies, the images tested and how many were left out (classes the
    model does not know). Empty, with its columns, where there is no second test set.

    ``test`` evaluates one run (default ``cross_test``; a test passes a fake)."""
    test = test or cross_test
    rows = []
    for (r, m, s), rec in records.items():
        if r == row and test_set is not None:
            out = test(rec, test_set.dataset, test_set.root, test_set.options, device=device)
            rows.append({"method": m, "seed": s, "own test set (%)": 100 * rec.summary["accuracy"],
                         "second test set (%)": 100 * out["accuracy"], "images": out["n"],
                         "left out": sum(out["left_out"].values()) if out["left_out"] else 0})
    return pd.DataFrame(rows, columns=CROSS_COLUMNS)


def glue_cross(glue: Callable, cross: pd.DataFrame, test_set: SecondTestSet | None) -> None:
    """Glue ``cross_name``, each method's mean accuracy on the second test set
    (``cross_sup``, ``cross_fix``, ``cross_snl``; "—" where not measured) and
    DTA+SNL − FixMatch on it, seed by seed (``cross_mean`` ... ``cross_verdict``).
    Without a second test set the prose still reads: "not measured: no claim"."""
    glue("cross_name", test_set.name if test_set else "none (set cross_dataset and cross_root)", display=False)
    mean = cross.groupby("method")["second test set (%)"].mean()
    for method, mk in SHORT.items():
        glue(f"cross_{mk}", tables.num(mean.get(method)), display=False)
    if test_set is not None:
        verdicts.glue_comparison(glue, "cross", verdicts.compare(cross, "DTA+SNL", "FixMatch", "second test set (%)",
                                                             name=test_set.name))
    else:
        for k in ("mean", "low", "high"):
            glue(f"cross_{k}", "—", display=False)
        glue("cross_verdict", "not measured: no claim", display=False)
