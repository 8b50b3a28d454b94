"""The book's tables: what every run records, as rows a chapter can show.

:func:`run_table` gives one row per run (scores in %), :func:`recall_table` one
row per run and class (recall from the confusion matrix, with scikit-learn, and
the class's test faces); :func:`pseudo_labels`, :func:`pseudo_label_course`,
:func:`threshold_course` and :func:`threshold_facts` read a run's logged history;
:class:`Table` displays a frame rounded, with "—" for what was not measured, and
:func:`glue_values` hands values to the prose. Paired comparisons and their words
are ``ssfer.book.verdicts``; plots are ``ssfer.book.figures``.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["SUMMARY_KEYS", "Table", "accepted_share", "flexmatch_phase", "glue_values", "num", "pseudo_label_course",
           "pseudo_labels", "recall_per_class", "recall_table", "run_scores", "run_table", "select", "step_costs",
           "table", "threshold_course", "threshold_facts", "time_to_accuracy", "window_mean"]

# a score column of the tables, in %, and the summary key it is read from
SUMMARY_KEYS = {"accuracy (%)": "accuracy", "mean class accuracy (%)": "mean_class_accuracy",
                "macro F1 (%)": "macro_f1"}


def num(value: Any, spec: str = ".1f", missing: str = "—") -> str:
    """``format(value, spec)``, or ``missing`` for None and NaN (a value a run did not measure)."""
    if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return missing
    return format(value, spec)


def select(table: pd.DataFrame, **where: Any) -> pd.DataFrame:
    """The rows of ``table`` whose columns hold the given values (``budget=100``)."""
    for col, value in where.items():
        table = table[table[col] == value]
    return table


def recall_per_class(confusion: Sequence[Sequence[int]]) -> np.ndarray:
    """Recall of each true class (rows of the confusion matrix); NaN for a class with no test sample."""
    from sklearn.metrics import recall_score

    cm = np.asarray(confusion, dtype=np.int64)
    c = len(cm)
    if cm.shape != (c, c) or (cm < 0).any():
        raise ValueError(f"recall_per_class: expected a square matrix of counts, got shape {cm.shape}")
    classes = np.arange(c)
    # the samples the matrix counts: cell (i, j) is cm[i, j] samples of class i predicted as j
    y_true = np.repeat(np.repeat(classes, c), cm.ravel())
    y_pred = np.repeat(np.tile(classes, c), cm.ravel())
    return recall_score(y_true, y_pred, labels=classes, average=None, zero_division=np.nan)


def _keys(key: Any, names: Sequence[str]) -> dict:
    key = key if isinstance(key, tuple) else (key,)
    if len(key) != len(names):
        raise ValueError(f"run key {key!r} does not match the key names {tuple(names)}")
    return dict(zip(names, key))


def run_scores(summary: Mapping[str, Any]) -> dict[str, float]:
    """A run summary's scores in % (``SUMMARY_KEYS``), its ECE and its labeled and unlabeled counts:
    the columns every table of runs shares."""
    return {**{col: 100 * summary[name] for col, name in SUMMARY_KEYS.items()},
            "ECE": summary["ece"], "labeled": summary["n_labeled"], "unlabeled": summary["n_unlabeled"]}


def run_table(records: Mapping[Any, Any], keys: Sequence[str] = ("method",)) -> pd.DataFrame:
    """One row per run: its key columns, then accuracy, mean class accuracy and
    macro-F1 in %, ECE, the labeled and unlabeled counts (``run_scores``).

    ``records`` maps a key (a value, or a tuple matching ``keys``) to a
    :class:`ssfer.record.RunRecord`.
    """
    return pd.DataFrame([{**_keys(key, keys), **run_scores(rec.summary)} for key, rec in records.items()])


def recall_table(records: Mapping[Any, Any], keys: Sequence[str] = ("method",)) -> pd.DataFrame:
    """Per-class test recall of every run, long: key columns, ``class``, ``recall (%)``
    and ``test faces`` (the class's count in the test split, from the confusion matrix)."""
    rows = []
    for key, rec in records.items():
        cm = np.asarray(rec.summary["confusion"])
        rows += [{**_keys(key, keys), "class": c, "recall (%)": 100 * v, "test faces": int(n)}
                 for c, v, n in zip(rec.class_names, recall_per_class(cm), cm.sum(1))]
    return pd.DataFrame(rows, columns=[*keys, "class", "recall (%)", "test faces"])


def pseudo_labels(record: Any, stages: int | None = None) -> pd.DataFrame:
    """Pseudo labels per class from a run's history, against the hidden true labels.

    ``accepted``: pseudo labels given as class c; ``seen``: unlabeled samples of
    true class c; ``correct``: accepted labels of c that were right. Then
    ``quantity`` = accepted / seen (above 1 when other faces are called c too),
    ``precision`` = correct / accepted (NaN where c got none) and
    ``correct share`` = correct / seen. With ``stages``, one row per stage and
    class (``stage`` 0..stages-1, ``step`` its last step); else whole-run sums.
    """
    names = record.class_names
    steps = record.config.train.steps
    rows = []
    for h in record.history:
        if h.get("pl_count_per_class") is None:
            continue
        stage = min(stages - 1, (h["step"] - 1) * stages // steps) if stages else 0
        for c, name in enumerate(names):
            n = h["pl_count_per_class"][c]
            prec = h["pl_precision_per_class"][c]
            rows.append({"stage": stage, "class": name, "accepted": n, "seen": h["unlabeled_count_per_class"][c],
                         "correct": (prec or 0.0) * n})
    cols = ["stage", "class", "accepted", "seen", "correct"]
    frame = pd.DataFrame(rows, columns=cols)
    out = frame.groupby(["stage", "class"], as_index=False, sort=False)[cols[2:]].sum()
    out["quantity"] = out["accepted"] / out["seen"].where(out["seen"] > 0)
    out["precision"] = out["correct"] / out["accepted"].where(out["accepted"] > 0)
    out["correct share"] = out["correct"] / out["seen"].where(out["seen"] > 0)
    if stages:
        out["step"] = (out["stage"] + 1) * steps / stages
        return out
    return out.drop(columns="stage")


def pseudo_label_course(records: Mapping[Any, Any], keys: Sequence[str] = ("method",)) -> pd.DataFrame:
    """Accepted share and precision of the pseudo labels at every logged step, long:
    the key columns, ``step``, ``quantity`` ("accepted share" | "precision"), ``value``.
    Runs that give no pseudo labels (supervised) are left out."""
    frames = []
    for key, rec in records.items():
        h = rec.history_frame()
        if "mask_rate" not in h:
            continue
        h = h[["step", "mask_rate", "pl_precision"]].rename(
            columns={"mask_rate": "accepted share", "pl_precision": "precision"})
        frames.append(h.melt(id_vars="step", var_name="quantity", value_name="value").assign(**_keys(key, keys)))
    cols = [*keys, "step", "quantity", "value"]
    if not frames:
        return pd.DataFrame(columns=cols)
    out = pd.concat(frames, ignore_index=True)
    out["value"] = pd.to_numeric(out["value"], errors="coerce")
    return out[cols]


def window_mean(course: pd.DataFrame, name: str, quantity: str, first: int, last: int,
                key: str = "method") -> float:
    """Mean of one curve of :func:`pseudo_label_course` over logged steps first..last (NaN if none)."""
    sel = course[(course[key] == name) & (course["quantity"] == quantity)
                 & course["step"].between(first, last)]["value"]
    return float(sel.mean()) if sel.notna().any() else float("nan")


def threshold_course(record: Any) -> pd.DataFrame:
    """Per-class thresholds at every logged step, long: ``step``, ``class``, ``threshold``
    (empty for a run without a threshold rule)."""
    rows = [{"step": h["step"], "class": c, "threshold": t}
            for h in record.history if h.get("thresholds") is not None
            for c, t in zip(record.class_names, h["thresholds"])]
    return pd.DataFrame(rows, columns=["step", "class", "threshold"])


def threshold_facts(records: Mapping[Any, Any], floor: float = 0.5, keys: Sequence[str] = ("method", "seed")
                    ) -> pd.DataFrame:
    """What each run's rule did, per class: the highest threshold it reached, the
    share of logged steps it sat on ``floor`` (DTA's tau_min), and the pseudo labels
    the class received per unlabeled face of it (:func:`pseudo_labels`' quantity)."""
    frames = []
    for key, rec in records.items():
        course = threshold_course(rec)
        if course.empty:
            continue
        g = course.groupby("class", sort=False)["threshold"]
        facts = pd.DataFrame({"top threshold": g.max(),
                              "steps on the floor (%)": 100 * g.apply(lambda t: (t <= floor + 1e-6).mean())})
        pl = pseudo_labels(rec).set_index("class")["quantity"]
        frames.append(facts.join(pl.rename("pseudo labels per face")).reset_index().assign(**_keys(key, keys)))
    cols = [*keys, "class", "top threshold", "steps on the floor (%)", "pseudo labels per face"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def time_to_accuracy(records: Mapping[Any, Any], keys: Sequence[str] = ("method", "seed")) -> pd.DataFrame:
    """Validation accuracy at every evaluation step against training time, long:
    key columns, ``step``, ``minutes``, ``val accuracy (%)``, ``timed``. A row's
    minutes are the run's cumulative ``train_seconds`` at that step where the run
    recorded it ("recorded"), else the run's total time scaled by the share of its
    steps done ("from the total": the runs recorded before the per-step time was)."""
    rows = []
    for key, rec in records.items():
        total, steps = rec.summary.get("train_seconds"), rec.summary.get("steps") or rec.config.train.steps
        for h in rec.history:
            if "val_accuracy" not in h:
                continue
            timed = "recorded" if "train_seconds" in h else "from the total"
            seconds = h["train_seconds"] if timed == "recorded" else total * h["step"] / steps
            rows.append({**_keys(key, keys), "step": h["step"], "minutes": seconds / 60,
                         "val accuracy (%)": 100 * h["val_accuracy"], "timed": timed})
    return pd.DataFrame(rows, columns=[*keys, "step", "minutes", "val accuracy (%)", "timed"])


def step_costs(table: pd.DataFrame, by: str = "method", baseline: str = "supervised") -> pd.DataFrame:
    """Seconds per 1,000 training steps of each method (mean over its runs, from
    ``train minutes`` and ``steps``) and its cost relative to ``baseline``."""
    per = (table["train minutes"] * 60 * 1000 / table["steps"]).groupby(table[by], sort=False)
    out = pd.DataFrame({"runs": per.size(), "seconds per 1,000 steps": per.mean()})
    if baseline in out.index:
        out[f"× {baseline}"] = out["seconds per 1,000 steps"] / out.loc[baseline, "seconds per 1,000 steps"]
    return out.reset_index()


def accepted_share(record: Any) -> float:
    """Mean share of the unlabeled batch whose pseudo label passed its threshold,
    over a run's logged steps (NaN for a run without pseudo labels)."""
    rates = [h["mask_rate"] for h in record.history if h.get("mask_rate") is not None]
    return float(np.mean(rates)) if rates else math.nan


def flexmatch_phase(thresholds: Sequence[float], tau: float = 0.95) -> str:
    """Where FlexMatch stands, from its per-class thresholds at one step.

    During its warm-up β_c = σ_c / max(max σ, #unused) stays below 1 for every
    class (more unlabeled samples were never confidently predicted than the
    most-predicted class holds), so every threshold is below τ; it ends when the
    most-predicted class reaches β = 1, a threshold of exactly τ.
    """
    top = max(thresholds)
    return "out of its warm-up" if top >= tau * (1 - 1e-6) else "still in its warm-up"


class Table:
    """A DataFrame shown rounded, with "—" for missing values: HTML through pandas'
    Styler (a fixed id, so re-running gives the same page) and the same text as plain text."""

    def __init__(self, frame: pd.DataFrame, digits: int | Mapping[str, int] = 1, index: bool = False):
        self.frame = frame
        self.digits = digits
        self.index = index

    def _formats(self) -> dict:
        num_cols = self.frame.select_dtypes("number").columns
        if isinstance(self.digits, Mapping):
            return {c: f"{{:.{self.digits.get(c, 1)}f}}" for c in num_cols
                    if not pd.api.types.is_integer_dtype(self.frame[c])}
        return {c: f"{{:.{self.digits}f}}" for c in num_cols if not pd.api.types.is_integer_dtype(self.frame[c])}

    def styler(self):
        uid = hashlib.sha1(self.frame.to_json(orient="split", default_handler=str).encode()).hexdigest()[:10]
        st = self.frame.style.format(self._formats(), na_rep="—").set_uuid(uid)
        st = st.set_table_attributes('class="dataframe ssfer-table"')
        return st if self.index else st.hide(axis="index")

    def text(self) -> pd.DataFrame:
        out = self.frame.copy()
        for col, spec in self._formats().items():
            out[col] = [num(v, spec[2:-1]) for v in self.frame[col]]
        return out.fillna("—")

    def _repr_html_(self) -> str:
        return self.styler().to_html()

    def __repr__(self) -> str:
        return self.text().to_string(index=self.index)


def table(frame: pd.DataFrame, digits: int | Mapping[str, int] = 1, index: bool = False) -> Table:
    """Display ``frame`` with ``digits`` decimals (per column with a mapping) and "—" for NaN."""
    return Table(frame, digits, index)


def glue_values(glue: Callable, values: Mapping[str, Any]) -> None:
    """Glue every ``{key: value}`` for the prose, none displayed where it is computed."""
    for key, value in values.items():
        glue(key, value, display=False)
